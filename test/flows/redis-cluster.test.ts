// Issue 12: the whole flow on a real 3-master Redis Cluster (REDIS_CLUSTER_NODES), with two app
// instances on one PostgreSQL database, for users whose keys live on different masters. Then a
// master dies, and readiness says so on both instances.
import { randomBytes, randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { Cluster } from 'ioredis'
import t from 'tap'
import tollgate, { redisClusterOptions } from '../../plugins/tollgate.js'
import { bearer, build, createTestDatabase, pluginOptions, testKeys, type TestApp, type TokenPair } from '../helper.js'
import { TLS_CA, masterOfKey, startRedisCluster } from '../faults/redis-topologies.js'
import { eventually, expectUnavailable } from '../faults/support.js'
import { INVALID_GRANT } from './support.js'

const PASSWORD = 'correct horse battery staple'
const ACCOUNT_LIMIT = 6

async function login (app: TestApp, email: string, password = PASSWORD) {
  return app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
}

async function tokens (app: TestApp, email: string): Promise<TokenPair> {
  const res = await login(app, email)
  if (res.statusCode !== 200) throw new Error(`login: ${res.statusCode} ${res.body}`)
  return res.json()
}

const me = (app: TestApp, access: string) => app.inject({ method: 'GET', url: '/users/me', headers: bearer(access) })
const refresh = (app: TestApp, refreshToken: string) => app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: refreshToken } })

t.test('two instances on a 3-master Redis Cluster', async t => {
  const nodes = await startRedisCluster(t)
  const prefix = `t-${randomBytes(6).toString('hex')}`
  const config = {
    REDIS_URL: undefined,
    REDIS_CLUSTER_NODES: nodes.map(n => `${n.host}:${n.port}`).join(','),
    DATABASE_URL: await createTestDatabase(t),
    REDIS_KEY_PREFIX: prefix,
    REFRESH_REUSE_INTERVAL: 0,
    ACCOUNT_RATE_LIMIT_MAX: ACCOUNT_LIMIT
  }
  const keys = testKeys()
  const a = await build(t, { config, keys })
  const b = await build(t, { config, keys })

  for (const app of [a, b]) {
    const ready = await app.inject({ method: 'GET', url: '/health/ready' })
    t.equal(ready.statusCode, 200, 'ready on the cluster')
    t.match(ready.json(), { status: 'ready', checks: { token_store: 'up' }, backends: { token_store: 'redis' } })
  }

  // Users until one lives on each master (a user's keys share the slot of its id's hash tag).
  const byMaster = new Map<number, { id: string, email: string }>()
  for (let i = 0; i < 40 && byMaster.size < nodes.length; i++) {
    const email = `cluster-${randomUUID()}@example.com`
    const registered = await a.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })
    t.equal(registered.statusCode, 201, 'register')
    const id = registered.json().id as string
    byMaster.set(await masterOfKey(nodes[0]!, `${prefix}:{${id}}:rt`), { id, email })
  }
  t.equal(byMaster.size, nodes.length, 'a user on every master')

  for (const [port, user] of byMaster) {
    t.test(`a user whose keys live on the master at port ${port}`, async t => {
      // Issued by one instance, accepted by the other.
      const first = await tokens(a, user.email)
      t.equal((await me(b, first.access_token)).statusCode, 200, 'A\'s access token works on B')

      // Rotation on B; the spent token presented to A is reuse (strict mode): the session ends everywhere.
      const rotated = await refresh(b, first.refresh_token)
      t.equal(rotated.statusCode, 200, 'refresh on B')
      const next = rotated.json() as TokenPair
      t.equal((await me(a, next.access_token)).statusCode, 200, 'the new access token works on A')
      const reused = await refresh(a, first.refresh_token)
      t.equal(reused.statusCode, 400, 'reuse on A refused')
      t.strictSame(reused.json(), INVALID_GRANT)
      t.equal((await refresh(b, next.refresh_token)).statusCode, 400, 'reuse ended the session: its newest refresh token is refused on B')
      t.equal((await me(b, next.access_token)).statusCode, 401, '…and its access token')

      // Sessions and logout across instances.
      const second = await tokens(b, user.email)
      const sessions = await a.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(second.access_token) })
      t.equal(sessions.statusCode, 200, 'sessions on A')
      t.equal(sessions.json().length, 1, 'one live session')
      t.equal((await a.inject({ method: 'POST', url: '/auth/logout', headers: bearer(second.access_token) })).statusCode, 204, 'logout on A')
      t.equal((await me(b, second.access_token)).statusCode, 401, 'logged-out access token refused on B')
      t.equal((await refresh(b, second.refresh_token)).statusCode, 400, 'logged-out refresh token refused on B')

      // Logout everywhere, from B, seen on A.
      const third = await tokens(a, user.email)
      const fourth = await tokens(b, user.email)
      t.equal((await b.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(fourth.access_token) })).statusCode, 204, 'logout-all on B')
      t.equal((await me(a, third.access_token)).statusCode, 401, 'every access token refused on A')
      t.equal((await refresh(a, third.refresh_token)).statusCode, 400, 'every refresh token refused on A')

      // The account goes on B; A knows it no more.
      const fifth = await tokens(a, user.email)
      const deleted = await b.inject({ method: 'DELETE', url: '/users/me', headers: bearer(fifth.access_token), payload: { password: PASSWORD } })
      t.equal(deleted.statusCode, 204, 'account deleted on B')
      t.equal((await login(a, user.email)).statusCode, 401, 'login refused on A')
      t.equal((await refresh(a, fifth.refresh_token)).statusCode, 400, 'its refresh token refused on A')
    })
  }

  t.test('the per-account login limit is shared by both instances', async t => {
    const email = `limited-${randomUUID()}@example.com`
    t.equal((await a.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })).statusCode, 201)
    for (let i = 0; i < ACCOUNT_LIMIT; i++) {
      t.equal((await login(i % 2 ? a : b, email, 'wrong password')).statusCode, 401, `attempt ${i + 1}: 401`)
    }
    for (const app of [a, b]) {
      const limited = await login(app, email)
      t.equal(limited.statusCode, 429, 'over the limit on either instance, even with the right password')
      t.match(limited.headers['retry-after'], /^[1-9][0-9]*$/)
    }
  })

  t.test('a host hands over its own Cluster client (created with redisClusterOptions)', async t => {
    const client = new Cluster(nodes.map(({ host, port }) => ({ host, port })), redisClusterOptions)
    t.teardown(() => client.disconnect())
    const host = Fastify()
    t.teardown(() => host.close())
    const warnings: string[] = []
    host.log.warn = ((message: unknown) => { warnings.push(String(message)) }) as typeof host.log.warn
    await host.register(tollgate, await pluginOptions(t, { redis: client, health: true }))
    await host.ready()
    t.equal((await host.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'ready')
    t.match(warnings, [], 'no warning: the client fails fast')
    const email = `host-${randomUUID()}@example.com`
    t.equal((await host.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })).statusCode, 201)
    const pair = await host.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } })
    t.equal(pair.statusCode, 200, 'login')
    t.equal((await host.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: pair.json().refresh_token } })).statusCode, 200, 'refresh')
    t.equal(client.status, 'ready', 'the host\'s client is left as it was')
  })

  t.test('a master dies: both instances are not ready, and its users get 503', async t => {
    const port = nodes[0]!.port
    // A live user on the master that is about to die.
    let victim: { email: string, access: string } | undefined
    for (let i = 0; i < 40 && !victim; i++) {
      const email = `doomed-${randomUUID()}@example.com`
      const registered = await a.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })
      if (await masterOfKey(nodes[1]!, `${prefix}:{${registered.json().id as string}}:rt`) === port) {
        victim = { email, access: (await tokens(a, email)).access_token }
      }
    }
    t.ok(victim, `a live user on the master at ${port}`)
    await nodes.find(n => n.port === port)!.kill()
    for (const app of [a, b]) {
      const ready = await eventually('readiness', 503, () => app.inject({ method: 'GET', url: '/health/ready' }))
      t.match(ready.json(), { status: 'unavailable', checks: { token_store: 'down' } }, 'not ready: one master is down')
      expectUnavailable(t, await eventually('protected request', 503, () => me(app, victim!.access)), 'a user on the dead master')
    }
  })
})

t.test('a cluster over TLS with a password (REDIS_TLS, REDIS_TLS_CA, REDIS_PASSWORD)', async t => {
  const password = `pw-${randomBytes(6).toString('hex')}`
  const nodes = await startRedisCluster(t, { tls: true, password })
  const seeds = nodes.map(n => `${n.host}:${n.port}`).join(',')
  const app = await build(t, { config: { REDIS_URL: undefined, REDIS_CLUSTER_NODES: seeds, REDIS_PASSWORD: password, REDIS_TLS: true, REDIS_TLS_CA: TLS_CA } })
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200, 'ready')
  const email = `tls-${randomUUID()}@example.com`
  t.equal((await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })).statusCode, 201, 'register')
  const pair = await tokens(app, email)
  const rotated = await refresh(app, pair.refresh_token)
  t.equal(rotated.statusCode, 200, 'refresh')
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(rotated.json().access_token) })).statusCode, 204, 'logout')

  // Without the CA, the servers' certificates are not trusted: not ready, and requests answer 503.
  const untrusting = await build(t, { config: { REDIS_URL: undefined, REDIS_CLUSTER_NODES: seeds, REDIS_PASSWORD: password, REDIS_TLS: true } })
  const notReady = await untrusting.inject({ method: 'GET', url: '/health/ready' })
  t.equal(notReady.statusCode, 503, 'an untrusted certificate: not ready')
  expectUnavailable(t, await untrusting.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } }), 'login without a trusted certificate')
})

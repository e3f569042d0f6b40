// Issue 12: three server processes on one PostgreSQL database and one Redis key prefix, with the
// same keys. A token issued by one instance works on the others, and a revocation on one (reuse,
// logout, logout-all) is seen by all at once. Each instance is the standalone server itself
// (`node --import tsx src/server.ts`), configured from its environment and listening on a free port.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes, randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { createTestDatabase, deleteRedisPrefix, redisClient, REDIS_URL, testKeys, type TokenPair } from '../helper.js'
import { INVALID_GRANT, jtiOf, sidOf } from './support.js'

const ROOT = join(import.meta.dirname, '..', '..')
const SERVER = join(ROOT, 'src', 'server.ts')
const START_TIMEOUT_MS = 45_000
const STOP_TIMEOUT_MS = 5_000
const REQUEST_TIMEOUT_MS = 15_000
const PARALLEL = 30
const PASSWORD = 'correct horse battery staple'

interface Instance { name: string, child: ChildProcess, url: string, output: () => string }

/** Stops a server process: SIGTERM (the server closes gracefully), SIGKILL if it is still up after a bound. */
async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const stopped = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)])
  if (stopped) return
  child.kill('SIGKILL')
  await Promise.race([exited, sleep(STOP_TIMEOUT_MS)])
}

/** One standalone server process, up once it logs the address it listens on. */
function start (name: string, env: NodeJS.ProcessEnv, children: ChildProcess[]): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let output = ''
  child.stdout?.on('data', chunk => { output += chunk })
  child.stderr?.on('data', chunk => { output += chunk })
  return new Promise<Instance>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`instance ${name} did not start in ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS)
    const onExit = (code: number | null) => { clearTimeout(timer); reject(new Error(`instance ${name} exited with ${code}:\n${output}`)) }
    child.stdout?.on('data', function onData () {
      const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1]
      if (!url) return
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.off('exit', onExit)
      resolve({ name, child, url, output: () => output })
    })
    child.once('exit', onExit)
  })
}

interface Cluster { instances: [Instance, Instance, Instance], prefix: string, redis: Redis }

/**
 * Three instances on one fresh database, one Redis key prefix and the same keys; stopped (and the
 * prefix deleted) at teardown.
 */
async function startCluster (t: Pick<Test, 'teardown'>, reuseInterval: number): Promise<Cluster> {
  const databaseUrl = await createTestDatabase(t)
  const prefix = `t-${randomBytes(6).toString('hex')}`
  const keys = testKeys()
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_OPTIONS: '',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    ACCESS_TOKEN_PRIVATE_KEY: keys.accessPrivateKey,
    REFRESH_TOKEN_SECRET: keys.refreshSecret,
    REFRESH_REUSE_INTERVAL: String(reuseInterval),
    RATE_LIMIT_MAX: '100000',
    ACCOUNT_RATE_LIMIT_MAX: '100000'
  }
  const children: ChildProcess[] = []
  // Should this process end without its teardown (killed on a timeout), no instance outlives it.
  const killAll = () => { for (const child of children) child.kill('SIGKILL') }
  process.once('exit', killAll)
  t.teardown(async () => {
    await Promise.all(children.map(stop))
    process.off('exit', killAll)
    await deleteRedisPrefix(prefix)
  })
  const instances = await Promise.all(['A', 'B', 'C'].map(name => start(name, env, children))) as Cluster['instances']
  return { instances, prefix, redis: await redisClient(t) }
}

interface Reply { status: number, body: Record<string, unknown> | null }

async function request (instance: Instance, method: 'GET' | 'POST', path: string, options: { body?: unknown, token?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = {}
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  if (options.token) headers.authorization = `Bearer ${options.token}`
  const res = await fetch(`${instance.url}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : null }
}

const register = (i: Instance, email: string) => request(i, 'POST', '/auth/register', { body: { email, password: PASSWORD } })
const login = (i: Instance, email: string) => request(i, 'POST', '/auth/login', { body: { email, password: PASSWORD } })
const refresh = (i: Instance, refreshToken: string) => request(i, 'POST', '/auth/refresh', { body: { grant_type: 'refresh_token', refresh_token: refreshToken } })
const me = (i: Instance, accessToken: string) => request(i, 'GET', '/users/me', { token: accessToken })

function tokensOf (t: Test, reply: Reply, step: string): TokenPair {
  t.equal(reply.status, 200, `${step}: 200`)
  if (reply.status !== 200) throw new Error(`${step}: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body as unknown as TokenPair
}

/** A new user, registered on one instance; returns its id and email. */
async function newUser (t: Test, on: Instance): Promise<{ userId: string, email: string }> {
  const email = `user-${randomUUID()}@example.com`
  const res = await register(on, email)
  t.equal(res.status, 201, `register on ${on.name}: 201`)
  return { userId: res.body?.id as string, email }
}

/** The live refresh jtis of a user: the allowlist `<prefix>:{<uid>}:rt`. */
const liveJtis = (c: Cluster, userId: string) => c.redis.smembers(`${c.prefix}:{${userId}}:rt`)

/** The invariant: at most one live refresh jti for the (single) session of this user; returns them. */
async function expectAtMostOneLive (t: Test, c: Cluster, userId: string, step: string): Promise<string[]> {
  const live = await liveJtis(c, userId)
  t.ok(live.length <= 1, `${step}: at most one live refresh jti (${live.length})`)
  return live
}

async function expectAccessRevokedEverywhere (t: Test, c: Cluster, accessToken: string, step: string) {
  const replies = await Promise.all(c.instances.map(i => me(i, accessToken)))
  t.same(replies.map(r => r.status), [401, 401, 401], `${step}: the access token is 401 on A, B and C`)
}

async function expectAccessWorksEverywhere (t: Test, c: Cluster, accessToken: string, userId: string, step: string) {
  const replies = await Promise.all(c.instances.map(i => me(i, accessToken)))
  t.same(replies.map(r => r.status), [200, 200, 200], `${step}: the access token is 200 on A, B and C`)
  t.same(replies.map(r => r.body?.id), [userId, userId, userId], `${step}: each names the user`)
}

/**
 * Refreshes one token PARALLEL times at once, round-robin over the instances, while polling the
 * allowlist; every poll must find at most one live jti.
 */
async function parallelRefreshes (c: Cluster, userId: string, refreshToken: string) {
  const done = new AbortController()
  let polls = 0
  let maxLive = 0
  const poller = (async () => {
    while (!done.signal.aborted) {
      maxLive = Math.max(maxLive, (await liveJtis(c, userId)).length)
      polls++
    }
  })()
  let replies: Reply[]
  try {
    replies = await Promise.all(Array.from({ length: PARALLEL }, (_, n) => refresh(c.instances[n % 3] as Instance, refreshToken)))
  } finally {
    done.abort()
    await poller
  }
  return { replies, polls, maxLive }
}

// The first set boots while the file loads, the second only when its test runs: six servers
// booting at once would starve the test files running beside this one on two cores. Each set is
// stopped at the end of what started it. A failed start fails the test that awaits it.
const strictCluster = startCluster(t, 0)
strictCluster.catch(() => {})

t.test('three instances, reuse interval 0: tokens and revocations hold across instances', async t => {
  const c = await strictCluster
  const [A, B, C] = c.instances

  await t.test('register on A, login on B, /users/me on C; refresh on C; reuse on A revokes the session everywhere', async t => {
    const { userId, email } = await newUser(t, A)
    const first = tokensOf(t, await login(B, email), 'login on B')
    t.same(await expectAtMostOneLive(t, c, userId, 'after login'), [jtiOf(first.refresh_token)], 'the login jti is live')
    const onC = await me(C, first.access_token)
    t.equal(onC.status, 200, "B's access token on C: 200")
    t.equal(onC.body?.id, userId, 'C names the user')

    const second = tokensOf(t, await refresh(C, first.refresh_token), "refresh on C of B's token")
    t.equal(sidOf(second.refresh_token), sidOf(first.refresh_token), 'the same session')
    t.same(await expectAtMostOneLive(t, c, userId, 'after the refresh'), [jtiOf(second.refresh_token)], 'only the successor is live')
    await expectAccessWorksEverywhere(t, c, second.access_token, userId, 'the successor')

    const reuse = await refresh(A, first.refresh_token)
    t.equal(reuse.status, 400, 'the spent token on A: 400')
    t.same(reuse.body, INVALID_GRANT, 'invalid_grant')
    t.same(await expectAtMostOneLive(t, c, userId, 'after the reuse'), [], 'no live jti: the session is revoked')
    await expectAccessRevokedEverywhere(t, c, second.access_token, 'after the reuse, the newest access token')
    await expectAccessRevokedEverywhere(t, c, first.access_token, 'after the reuse, the first access token')
    const replies = await Promise.all(c.instances.map(i => refresh(i, second.refresh_token)))
    t.same(replies.map(r => r.status), [400, 400, 400], 'the newest refresh token is 400 on A, B and C')
    t.same(replies.map(r => r.body?.error), ['invalid_grant', 'invalid_grant', 'invalid_grant'], 'invalid_grant')
    t.same(await expectAtMostOneLive(t, c, userId, 'after the rejected refreshes'), [])
  })

  await t.test('logout on A: the access token is 401 on B and C at once', async t => {
    const { userId, email } = await newUser(t, B)
    const tokens = tokensOf(t, await login(C, email), 'login on C')
    await expectAccessWorksEverywhere(t, c, tokens.access_token, userId, 'before logout')
    const logout = await request(A, 'POST', '/auth/logout', { token: tokens.access_token })
    t.equal(logout.status, 204, 'logout on A: 204')
    // No wait between the logout's reply and these requests.
    const [onB, onC] = await Promise.all([me(B, tokens.access_token), me(C, tokens.access_token)])
    t.same([onB.status, onC.status], [401, 401], 'right after, 401 on B and C')
    t.equal((await me(A, tokens.access_token)).status, 401, 'and on A')
    t.same(await liveJtis(c, userId), [], 'no live refresh jti')
    const replies = await Promise.all(c.instances.map(i => refresh(i, tokens.refresh_token)))
    t.same(replies.map(r => r.status), [400, 400, 400], 'its refresh token is 400 on A, B and C')
  })

  await t.test('logout-all on one instance ends every session on all', async t => {
    const { userId, email } = await newUser(t, C)
    const sessions = await Promise.all(c.instances.map(async i => tokensOf(t, await login(i, email), `login on ${i.name}`)))
    t.equal(new Set(sessions.map(s => sidOf(s.refresh_token))).size, 3, 'three sessions')
    t.equal((await liveJtis(c, userId)).length, 3, 'three live refresh jtis, one per session')
    for (const s of sessions) await expectAccessWorksEverywhere(t, c, s.access_token, userId, `session ${sidOf(s.refresh_token).slice(0, 8)}`)

    const all = await request(B, 'POST', '/auth/logout-all', { token: (sessions[0] as TokenPair).access_token })
    t.equal(all.status, 204, 'logout-all on B: 204')
    for (const [n, s] of sessions.entries()) {
      await expectAccessRevokedEverywhere(t, c, s.access_token, `session ${n + 1} after logout-all`)
      const replies = await Promise.all(c.instances.map(i => refresh(i, s.refresh_token)))
      t.same(replies.map(r => r.status), [400, 400, 400], `session ${n + 1}: its refresh token is 400 everywhere`)
    }
    t.same(await liveJtis(c, userId), [], 'no live refresh jti')
  })

  await t.test(`${PARALLEL} parallel refreshes of one token over the three instances: one wins, the reuse ends the session`, async t => {
    const { userId, email } = await newUser(t, A)
    const tokens = tokensOf(t, await login(B, email), 'login on B')
    const { replies, polls, maxLive } = await parallelRefreshes(c, userId, tokens.refresh_token)
    const ok = replies.filter(r => r.status === 200)
    const rejected = replies.filter(r => r.status === 400 && r.body?.error === 'invalid_grant')
    t.equal(ok.length, 1, 'exactly one 200')
    t.equal(rejected.length, PARALLEL - 1, `the other ${PARALLEL - 1} are 400 invalid_grant`)
    t.ok(polls > 0, `the allowlist was polled during the refreshes (${polls} polls)`)
    t.ok(maxLive <= 1, `every poll found at most one live refresh jti (max ${maxLive})`)
    t.same(await expectAtMostOneLive(t, c, userId, 'after the refreshes'), [], 'the losers are reuse: the session ended')
    const winner = ok[0]?.body as unknown as TokenPair | undefined
    if (winner) {
      await expectAccessRevokedEverywhere(t, c, winner.access_token, "the winner's access token")
      const again = await Promise.all(c.instances.map(i => refresh(i, winner.refresh_token)))
      t.same(again.map(r => r.status), [400, 400, 400], "the winner's refresh token is 400 everywhere")
    }
    await expectAccessRevokedEverywhere(t, c, tokens.access_token, 'the login access token')
  })
})

t.test('three instances, reuse interval 10 s: parallel refreshes all get the same successor', async t => {
  const c = await startCluster(t, 10)
  const [A, B] = c.instances
  const { userId, email } = await newUser(t, A)
  const tokens = tokensOf(t, await login(B, email), 'login on B')
  const { replies, polls, maxLive } = await parallelRefreshes(c, userId, tokens.refresh_token)
  t.same(replies.filter(r => r.status !== 200).map(r => r.status), [], `all ${PARALLEL} are 200`)
  const successors = new Set(replies.map(r => jtiOf(r.body?.refresh_token as string)))
  t.equal(successors.size, 1, 'all with the same successor refresh token (one jti)')
  t.ok(polls > 0, `the allowlist was polled during the refreshes (${polls} polls)`)
  t.ok(maxLive <= 1, `every poll found at most one live refresh jti (max ${maxLive})`)
  const successor = replies[0]?.body?.refresh_token as string
  t.same(await expectAtMostOneLive(t, c, userId, 'after the refreshes'), [jtiOf(successor)], 'the successor is the one live jti')
  t.equal(sidOf(successor), sidOf(tokens.refresh_token), 'the session continues')
  const access = replies[0]?.body?.access_token as string
  await expectAccessWorksEverywhere(t, c, access, userId, 'an access token of the refreshes')
  const next = tokensOf(t, await refresh(c.instances[2], successor), 'the successor refreshes on C')
  t.same(await expectAtMostOneLive(t, c, userId, 'after rotating the successor'), [jtiOf(next.refresh_token)])
})

// Issue 12: Redis behind Sentinel (REDIS_SENTINELS), with passwords on the data nodes and on the
// sentinels. The master dies; the sentinels promote the replica. Meanwhile every request answers
// 503 or its usual answer, never 500 and never 200 for a revoked token, and Tollgate follows the new
// master without a restart.
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { bearer, build, type TestApp, type TokenPair } from '../helper.js'
import { TLS_CA, ask, startSentinels, until, type SentinelSetup } from './redis-topologies.js'
import { expectUnavailableFast } from './support.js'

const PASSWORD = 'correct horse battery staple'
const FAILOVER_BOUND_MS = 30_000
const PROBE_PAUSE_MS = 100

async function loginPair (app: TestApp, email: string): Promise<TokenPair> {
  const res = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 200) throw new Error(`login: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** Until the replica has every write the master acknowledged (so the test knows what a failover keeps). */
async function replicated (setup: SentinelSetup): Promise<void> {
  const offset = async (node: typeof setup.master, field: string) =>
    Number(new RegExp(`${field}:(\\d+)`).exec(String(await ask({ ...node, password: setup.password, tls: setup.tls }, 'INFO', 'replication')))?.[1] ?? -1)
  const target = await offset(setup.master, 'master_repl_offset')
  await until(async () => await offset(setup.replica, 'slave_repl_offset') >= target, 10_000, 'the replica to catch up')
}

/** The end of each sentinel's log: why a failover did not happen (votes, TILT, no good replica). */
async function sentinelLogTails (setup: SentinelSetup): Promise<string[][]> {
  return await Promise.all(setup.sentinelLogs.map(async file =>
    (await readFile(file, 'utf8').catch(() => '(no log)')).split('\n').slice(-25)))
}

/** One line of the app's log, short: when, what, and the error's message. */
function summarize (line: string): string {
  const entry = JSON.parse(line) as { time: number, msg: string, err?: { message?: string } }
  return `${new Date(entry.time).toISOString()} ${entry.msg}: ${entry.err?.message ?? ''}`
}

/** An app behind these sentinels, and its warnings (Redis connection errors), shown if it does not recover. */
async function sentinelApp (t: Test, setup: SentinelSetup): Promise<{ app: TestApp, warnings: string[] }> {
  const warnings: string[] = []
  const logStream = new Writable({ write (chunk, _encoding, done) { warnings.push(String(chunk)); done() } })
  return { app: await build(t, { config: { ...sentinelConfig(setup), LOG_LEVEL: 'warn' }, logStream }), warnings }
}

/** The settings of a deployment behind these sentinels. */
function sentinelConfig (setup: SentinelSetup) {
  return {
    REDIS_URL: undefined,
    REDIS_SENTINELS: setup.sentinels.map(s => `${s.host}:${s.port}`).join(','),
    REDIS_SENTINEL_NAME: setup.name,
    REDIS_PASSWORD: setup.password,
    REDIS_SENTINEL_PASSWORD: setup.password,
    ...(setup.tls && { REDIS_TLS: true, REDIS_TLS_CA: TLS_CA })
  }
}

for (const tls of [false, true]) {
  t.test(`a Sentinel failover${tls ? ', all over TLS' : ''}: 503 while it lasts, never 500, never a revoked token; recovery without a restart`, async t => {
    await failover(t, await startSentinels(t, { tls }))
  })
}

async function failover (t: Test, setup: SentinelSetup) {
  const { app, warnings } = await sentinelApp(t, setup)
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200, 'ready through the sentinels')

  const email = `sentinel-${randomUUID()}@example.com`
  t.equal((await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })).statusCode, 201, 'register')
  const revoked = await loginPair(app, email)
  const live = await loginPair(app, email)
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(revoked.access_token) })).statusCode, 204, 'logout')
  await replicated(setup)

  await setup.master.kill()
  const seen = { me: new Map<number, number>(), revokedAccess: new Map<number, number>(), revokedRefresh: new Map<number, number>(), ready: new Map<number, number>() }
  const count = (map: Map<number, number>, status: number) => map.set(status, (map.get(status) ?? 0) + 1)
  const started = Date.now()
  let recovered = false
  while (Date.now() - started < FAILOVER_BOUND_MS) {
    const [me, revokedAccess, revokedRefresh, readiness] = await Promise.all([
      app.inject({ method: 'GET', url: '/users/me', headers: bearer(live.access_token) }),
      app.inject({ method: 'GET', url: '/users/me', headers: bearer(revoked.access_token) }),
      app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: revoked.refresh_token } }),
      app.inject({ method: 'GET', url: '/health/ready' })
    ])
    count(seen.me, me.statusCode)
    count(seen.revokedAccess, revokedAccess.statusCode)
    count(seen.revokedRefresh, revokedRefresh.statusCode)
    count(seen.ready, readiness.statusCode)
    for (const res of [me, revokedAccess, revokedRefresh, readiness]) {
      if (res.statusCode === 503) t.match(res.headers['retry-after'], /^[1-9][0-9]*$/, '503 with Retry-After')
    }
    if (me.statusCode === 200 && readiness.statusCode === 200 && seen.me.has(503)) {
      recovered = true
      break
    }
    await sleep(PROBE_PAUSE_MS)
  }
  const summary = JSON.stringify(Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, Object.fromEntries(v)])))
  const secured = { password: setup.password, tls: setup.tls }
  // Why not, if not: where the sentinels and the replica stand, the app's last warnings, and the
  // sentinels' logs (votes, TILT, +switch-master).
  const why = recovered
    ? {}
    : {
        sentinelsSeeMasterAt: await ask({ ...setup.sentinels[0]!, ...secured }, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', setup.name),
        replicaRole: await ask({ ...setup.replica, ...secured }, 'ROLE'),
        lastWarnings: warnings.slice(-10).map(summarize),
        sentinelLogs: await sentinelLogTails(setup)
      }
  t.ok(recovered, `recovered within ${FAILOVER_BOUND_MS} ms, without a restart (${summary})`, why)
  t.ok(seen.me.has(503), 'requests during the failover answered 503')
  t.same([...seen.me.keys()].filter(s => s !== 200 && s !== 503), [], 'a live token: only 200 or 503')
  t.same([...seen.revokedAccess.keys()].filter(s => s !== 401 && s !== 503), [], 'a revoked access token: only 401 or 503, never 200')
  t.same([...seen.revokedRefresh.keys()].filter(s => s !== 400 && s !== 503), [], 'a revoked refresh token: only 400 or 503, never 200')
  t.same([...seen.ready.keys()].filter(s => s !== 200 && s !== 503), [], 'readiness: 200 or 503')

  // The promoted replica serves everything, the revocation included.
  const promoted = await ask({ ...setup.replica, password: setup.password, tls: setup.tls }, 'ROLE') as unknown[]
  t.equal(promoted[0], 'master', 'the replica was promoted')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(revoked.access_token) })).statusCode, 401, 'the revoked access token is still refused')
  t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: revoked.refresh_token } })).statusCode, 400, 'the revoked refresh token is still refused')
  const rotated = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: live.refresh_token } })
  t.equal(rotated.statusCode, 200, 'the live session rotates on the new master')
  await loginPair(app, email)
}

// ioredis asks the sentinels for the master while it reconnects. A +switch-master that arrives in
// the middle of that (the first sentinel is slow, so the asking lasts) ended the client for good:
// status "end", no more reconnects, 503 until a restart.
t.test('a failover while the first sentinel does not answer: the app still follows the new master', async t => {
  const setup = await startSentinels(t)
  const { app, warnings } = await sentinelApp(t, setup)
  const email = `slow-sentinel-${randomUUID()}@example.com`
  t.equal((await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })).statusCode, 201, 'register')
  const live = await loginPair(app, email)
  await replicated(setup)

  setup.sentinels[0]!.pause()
  try {
    await setup.master.kill()
    const me = () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(live.access_token) })
    await until(async () => (await me()).statusCode === 503, 5_000, 'the outage to show')
    await until(async () => (await me()).statusCode === 200, FAILOVER_BOUND_MS, 'the app to follow the new master')
      .catch(async (err: Error) => {
        t.fail(err.message, { replicaRole: await ask({ ...setup.replica, password: setup.password }, 'ROLE'), lastWarnings: warnings.slice(-10).map(summarize) })
      })
  } finally {
    setup.sentinels[0]!.resume()
  }
  t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: live.refresh_token } })).statusCode, 200, 'the session rotates on the new master')
})

t.test('REDIS_WAIT_REPLICAS: a revocation is acknowledged once a replica holds it, else 503', async t => {
  const setup = await startSentinels(t)
  const waiting = await build(t, { config: { ...sentinelConfig(setup), REDIS_WAIT_REPLICAS: 1 } })
  const email = `wait-${randomUUID()}@example.com`
  t.equal((await waiting.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })).statusCode, 201, 'register')
  const logout = (app: TestApp, access: string) => app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(access) })

  const first = await loginPair(waiting, email)
  t.equal((await logout(waiting, first.access_token)).statusCode, 204, 'the replica acknowledges: 204')

  // A replica that does not answer: the revocation is on the master only, so it is not acknowledged.
  const second = await loginPair(waiting, email)
  const third = await loginPair(waiting, email)
  setup.replica.pause()
  try {
    await expectUnavailableFast(t, 'logout while no replica acknowledges', () => logout(waiting, second.access_token))
    await expectUnavailableFast(t, 'logout-all while no replica acknowledges', () => waiting.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(third.access_token) }))
  } finally {
    setup.replica.resume()
  }
  // It was applied on the master, and reaches the replica once it answers again.
  t.equal((await waiting.inject({ method: 'GET', url: '/users/me', headers: bearer(second.access_token) })).statusCode, 401, 'the logged-out token is refused')
  await replicated(setup)

  // WAIT blocks the connection it is sent on: while one revocation waits for a replica, other
  // requests are not held up behind it (store review). No timing: the order of the answers.
  const waitingLogout = await loginPair(waiting, email)
  const reader = await loginPair(waiting, email)
  setup.replica.pause()
  try {
    const answered: string[] = []
    const pending = logout(waiting, waitingLogout.access_token).then(res => { answered.push('logout'); return res })
    await until(async () => String(await ask({ ...setup.master, password: setup.password, tls: setup.tls }, 'CLIENT', 'LIST')).includes('cmd=wait'), 5_000, 'the logout to wait for a replica')
    const me = await waiting.inject({ method: 'GET', url: '/users/me', headers: bearer(reader.access_token) })
    answered.push('me')
    t.equal(me.statusCode, 200, 'another session reads /users/me')
    t.equal((await pending).statusCode, 503, 'the waiting logout: 503')
    t.same(answered, ['me', 'logout'], 'answered while the logout was still waiting')
  } finally {
    setup.replica.resume()
  }
  await replicated(setup)
  const fourth = await loginPair(waiting, email)
  t.equal((await logout(waiting, fourth.access_token)).statusCode, 204, 'acknowledged again once the replica is back')

  // Without the setting the same outage is acknowledged at once: a failover then could undo it.
  const plain = await build(t, { config: sentinelConfig(setup) })
  const other = `plain-${randomUUID()}@example.com`
  t.equal((await plain.inject({ method: 'POST', url: '/auth/register', payload: { email: other, password: PASSWORD } })).statusCode, 201)
  const fifth = await loginPair(plain, other)
  setup.replica.pause()
  try {
    t.equal((await logout(plain, fifth.access_token)).statusCode, 204, 'REDIS_WAIT_REPLICAS=0: 204 with no replica holding it')
  } finally {
    setup.replica.resume()
  }
})

// Redis outages against a private redis-server: hung (SIGSTOP), resumed (SIGCONT), killed and restarted.
// Every request during an outage must fail closed and fast: 503 with Retry-After within 2 s (the
// issue's fail-fast bound), never 200. All traffic stays on 127.0.0.1.
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { bearer, build, login, registerAndLogin } from '../helper.js'
import {
  buildWithStore, expectAccessRevoked, expectAccessWorks, expectAllowlist, expectNoContent, expectRefreshRejected,
  expectRefreshWorks, expectTokenResponse, refreshJson
} from '../flows/support.js'
import { HUNG_FOR_MS, appWithHungWrites, expectLateRotationDropped } from './hung-writes.js'
import { startRedisServer } from './redis-server.js'
import { eventually, expectUnavailableFast } from './support.js'

type Response = Awaited<ReturnType<FastifyInstance['inject']>>

// The command timeout (1 s) plus a margin for a busy machine; before the per-call deadline, requests
// made while an earlier auto-pipelined batch was in flight took two timeouts (2 s and more).
const CONCURRENT_BOUND_MS = 1600

async function setup (t: Test) {
  const server = await startRedisServer(t)
  const { app, store } = await buildWithStore(t, { REDIS_URL: server.url }, server.url)
  // The test's own client reconnects by itself; its connection errors during outages are expected.
  store.redis.on('error', () => {})
  // Boot waits for the first connection, so the first request already finds Redis.
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'ready right after boot')
  return { server, app, store }
}

t.test('a hung Redis: every request is 503 fast; after it resumes everything works without a rebuild', async t => {
  const { server, app, store } = await setup(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const ended = await login(app, email, password)
  expectNoContent(t, await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(ended.access_token) }), 'logout before the outage')
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token], 'before the outage')

  server.pause()
  try {
    await expectUnavailableFast(t, 'GET /users/me', () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(a.access_token) }))
    await expectUnavailableFast(t, 'GET /users/me with a revoked token', () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(ended.access_token) }))
    await expectUnavailableFast(t, 'POST /auth/refresh', () => refreshJson(app, a.refresh_token))
    await expectUnavailableFast(t, 'POST /auth/login', () => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } }))
    await expectUnavailableFast(t, 'POST /auth/logout', () => app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(b.access_token) }))
    const ready = await app.inject({ method: 'GET', url: '/health/ready' })
    t.equal(ready.statusCode, 503, 'not ready while Redis hangs')
  } finally {
    server.resume()
  }

  // Same app, no rebuild: it answers again once Redis does.
  await eventually('GET /users/me after SIGCONT', 200, () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(a.access_token) }))
  await expectAccessWorks(t, app, a.access_token, userId, 'the access token after the outage')
  // The client retries the refresh that got a 503 with the same token. The hung server may still
  // run the rotation it had been sent once it resumes; the default reuse interval (10 s) then hands
  // the retry that same successor, so the retry works either way.
  const a2 = await expectRefreshWorks(t, app, a.refresh_token, 'the retried refresh')
  await expectAccessWorks(t, app, a2.access_token, userId, 'the rotated access token')
  const fresh = expectTokenResponse(t, await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } }), 'login after the outage')
  await expectAccessWorks(t, app, fresh.access_token, userId, 'a new session after the outage')
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'ready again')

  // Revoked before the outage, still revoked after it.
  await expectAccessRevoked(t, app, ended.access_token, 'the session ended before the outage: access')
  await expectRefreshRejected(t, app, ended.refresh_token, 'the session ended before the outage: refresh')
})

t.test('a killed Redis: 503 fast; a new redis-server on the port and the app recovers (with an empty store)', async t => {
  const { server, app, store } = await setup(t)
  const { userId, email, password, tokens } = await registerAndLogin(app)
  await expectAllowlist(t, store, userId, [tokens.refresh_token], 'before the outage')

  await server.kill()
  await expectUnavailableFast(t, 'GET /users/me', () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) }))
  await expectUnavailableFast(t, 'POST /auth/refresh', () => refreshJson(app, tokens.refresh_token))
  await expectUnavailableFast(t, 'POST /auth/login', () => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } }))
  await expectUnavailableFast(t, 'POST /auth/logout', () => app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.access_token) }))
  await expectUnavailableFast(t, 'GET /users/me again', () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) }))

  await server.start()
  const res = await eventually('login after the restart', 200, () => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } }))
  const fresh = expectTokenResponse(t, res, 'login after the restart')
  await expectAccessWorks(t, app, fresh.access_token, userId, 'a new session after the restart')
  await eventually('the test client reconnects', 200, async () => ({ statusCode: await store.redis.ping() === 'PONG' ? 200 : 0 }) as Response)
  await expectAllowlist(t, store, userId, [fresh.refresh_token], 'the restarted, empty store holds only the new session')

  // No persistence: the old session is gone with the data, so its tokens no longer work.
  await expectAccessRevoked(t, app, tokens.access_token, 'the old access token')
  await expectRefreshRejected(t, app, tokens.refresh_token, 'the old refresh token')
  const fresh2 = await expectRefreshWorks(t, app, fresh.refresh_token, 'refresh of the new session')
  await expectAllowlist(t, store, userId, [fresh2.refresh_token], 'after the new session rotated')
})

t.test('the app boots while Redis hangs or is down, is not ready, and serves once Redis answers', async t => {
  const server = await startRedisServer(t)
  server.pause()
  const hung = await build(t, { config: { REDIS_URL: server.url } })
  const notReady = await hung.inject({ method: 'GET', url: '/health/ready' })
  t.equal(notReady.statusCode, 503, 'booted, not ready while Redis hangs')
  t.equal(notReady.json().checks.token_store, 'down')
  server.resume()
  await eventually('ready after SIGCONT', 200, () => hung.inject({ method: 'GET', url: '/health/ready' }))
  const { userId, tokens } = await registerAndLogin(hung)
  await expectAccessWorks(t, hung, tokens.access_token, userId, 'a session on the app that booted during the hang')

  await server.kill()
  const down = await build(t, { config: { REDIS_URL: server.url } })
  t.equal((await down.inject({ method: 'GET', url: '/health/ready' })).statusCode, 503, 'booted, not ready while Redis is down')
  await server.start()
  await eventually('ready after the start', 200, () => down.inject({ method: 'GET', url: '/health/ready' }))
  const other = await registerAndLogin(down)
  await expectAccessWorks(t, down, other.tokens.access_token, other.userId, 'a session on the app that booted while Redis was down')
})

t.test('writes that reach a resumed Redis after their deadline are dropped, not applied behind the client', async t => {
  const server = await startRedisServer(t)
  const hung = await appWithHungWrites(t, server)
  const { app, store, hangBeforeNextWrite } = hung
  const { userId, email, password, tokens } = await registerAndLogin(app)
  const retried = await expectLateRotationDropped(t, server, hung, userId, tokens.refresh_token)

  // The same for a login's new session.
  hangBeforeNextWrite()
  await expectUnavailableFast(t, 'login, its session sent to the hung Redis', () => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } }))
  await sleep(HUNG_FOR_MS)
  server.resume()
  const sessions = await eventually('sessions', 200, () => app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(retried.access_token) }))
  t.equal(sessions.json().length, 1, 'the 503 login left no session behind')
  await expectAllowlist(t, store, userId, [retried.refresh_token], 'still exactly the retried token')
})

t.test('a hung Redis at concurrency 20: each request is 503 within the command timeout, not twice it', async t => {
  const { server, app } = await setup(t)
  const { tokens } = await registerAndLogin(app)
  server.pause()
  t.teardown(() => server.resume())
  // Staggered, as real traffic arrives: later requests find an earlier auto-pipelined batch in flight.
  const waits: Array<Promise<void>> = []
  for (let i = 0; i < 20; i++) {
    waits.push(expectUnavailableFast(t, `request ${i + 1}`, () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) }), CONCURRENT_BOUND_MS))
    await sleep(10)
  }
  await Promise.all(waits)
})

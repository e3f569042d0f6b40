// POST /auth/password: the current session survives, every other session ends, the old password stops
// working; if Redis fails on the way, nothing changes.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import tollgate from '../../plugins/tollgate.js'
import { REDIS_CLIENT_OPTIONS } from '../../src/redis-client.js'
import { createRedisTokenStore } from '../../src/token-store/redis.js'
import { expectUnavailable } from '../faults/support.js'
import { closedPort } from '../fixtures.js'
import { captureLog } from '../recovery/support.js'
import { bearer, login, pluginOptions, registerAndLogin, storeRedis } from '../helper.js'
import {
  buildWithStore, expectAccessRevoked, expectAccessWorks, expectAllowlist, expectNoContent, expectRefreshRejected,
  expectRefreshWorks
} from '../flows/support.js'

const NEW_PASSWORD = 'a brand new passphrase'

t.test('a wrong current password is 401, a short new one 400, and neither changes anything', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const change = (body: Record<string, unknown>) => app.inject({ method: 'POST', url: '/auth/password', headers: bearer(a.access_token), payload: body })

  const wrong = await change({ current_password: 'not the password', new_password: NEW_PASSWORD })
  t.equal(wrong.statusCode, 401, 'wrong current password: 401')
  t.same(wrong.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'The password is incorrect' })
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token], 'after the wrong password')

  const short = await change({ current_password: password, new_password: 'short' })
  t.equal(short.statusCode, 400, 'too short: 400')
  t.equal(short.json().code, 'INVALID_REQUEST')
  t.match(short.json().message, /new_password/, 'the message names the field')
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token], 'after the short password')

  const missing = await change({ new_password: NEW_PASSWORD })
  t.equal(missing.statusCode, 400, 'no current password: 400')

  const anonymous = await app.inject({ method: 'POST', url: '/auth/password', payload: { current_password: password, new_password: NEW_PASSWORD } })
  t.equal(anonymous.statusCode, 401, 'without a token: 401')
  t.equal(anonymous.json().code, 'INVALID_TOKEN')

  await expectAccessWorks(t, app, a.access_token, userId, 'A still works')
  await expectAccessWorks(t, app, b.access_token, userId, 'B still works')
  await login(app, email, password)
  const bad = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: NEW_PASSWORD } })
  t.equal(bad.statusCode, 401, 'the rejected new password does not log in')
})

t.test('a password change keeps the current session and ends every other one', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const c = await login(app, email, password)
  const c2 = await expectRefreshWorks(t, app, c.refresh_token, 'C rotates once')
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token, c2.refresh_token], 'three sessions')

  const res = await app.inject({ method: 'POST', url: '/auth/password', headers: bearer(a.access_token), payload: { current_password: password, new_password: NEW_PASSWORD } })
  expectNoContent(t, res, 'password change')
  await expectAllowlist(t, store, userId, [a.refresh_token], 'after the change: only the current session')

  await expectAccessWorks(t, app, a.access_token, userId, 'the current session')
  for (const [name, token] of [['B', b.access_token], ['C', c.access_token], ['C2', c2.access_token]] as const) {
    await expectAccessRevoked(t, app, token, `${name} access`)
  }
  for (const [name, token] of [['B', b.refresh_token], ['C', c.refresh_token], ['C2', c2.refresh_token]] as const) {
    await expectRefreshRejected(t, app, token, `${name} refresh`)
  }
  await expectAllowlist(t, store, userId, [a.refresh_token], 'after the other tokens were tried')

  const a2 = await expectRefreshWorks(t, app, a.refresh_token, 'the current session refreshes')
  await expectAllowlist(t, store, userId, [a2.refresh_token], 'after the current session rotated')
  await expectAccessWorks(t, app, a2.access_token, userId, 'the current session after rotation')

  const old = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
  t.equal(old.statusCode, 401, 'the old password no longer logs in')
  t.same(old.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Invalid email or password' })
  await expectAllowlist(t, store, userId, [a2.refresh_token], 'after the failed login')

  const fresh = await login(app, email, NEW_PASSWORD)
  await expectAccessWorks(t, app, fresh.access_token, userId, 'a login with the new password')
  await expectAllowlist(t, store, userId, [a2.refresh_token, fresh.refresh_token], 'after the new login')
})

t.test('Redis failing while the other sessions end: 503, the password unchanged, and the same request works afterwards', async t => {
  // The Redis store, except that endSessions goes through a client of a closed port while `redisDown`.
  const options = { idleTtl: 3_600_000, reuseInterval: 0, absoluteTtl: 3_600_000 }
  const { redis, prefix } = await storeRedis(t)
  const live = createRedisTokenStore({ redis, prefix, ...options })
  const unreachable = new Redis(`redis://127.0.0.1:${await closedPort()}`, REDIS_CLIENT_OPTIONS)
  unreachable.on('error', () => {}) // ECONNREFUSED, as intended
  t.teardown(() => unreachable.disconnect())
  const down = createRedisTokenStore({ redis: unreachable, prefix, ...options })
  let redisDown = false
  const tokenStore = { ...live, endSessions: (end: Parameters<typeof live.endSessions>[0]) => (redisDown ? down : live).endSessions(end) }
  const log = captureLog()
  const app = Fastify({ logger: { level: 'error', stream: log.stream } })
  t.teardown(() => app.close())
  await app.register(tollgate, await pluginOptions(t, { tokenStore }))
  await app.ready()

  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const change = () => app.inject({ method: 'POST', url: '/auth/password', headers: bearer(a.access_token), payload: { current_password: password, new_password: NEW_PASSWORD } })

  redisDown = true
  expectUnavailable(t, await change(), 'the change while Redis fails')
  redisDown = false
  const logged = log.lines().find(line => line.msg === 'dependency unavailable')
  t.equal(logged?.dependency, 'redis', 'logged as Redis\'s failure, although it came out of a PostgreSQL transaction')

  await login(app, email, password)
  const withNew = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: NEW_PASSWORD } })
  t.equal(withNew.statusCode, 401, 'the new password was not stored')
  await expectAccessWorks(t, app, b.access_token, userId, 'the other session is untouched')
  const b2 = await expectRefreshWorks(t, app, b.refresh_token, 'the other session still refreshes')

  expectNoContent(t, await change(), 'the same request, once Redis answers')
  await expectAccessWorks(t, app, a.access_token, userId, 'the current session')
  await expectAccessRevoked(t, app, b2.access_token, 'the other session\'s access, now')
  await expectRefreshRejected(t, app, b2.refresh_token, 'the other session\'s refresh, now')
  const withOld = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
  t.equal(withOld.statusCode, 401, 'the old password no longer logs in')
  await login(app, email, NEW_PASSWORD)
})

// DELETE /users/me: the password is checked, then every token of the account stops working.
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import tollgate from '../../plugins/tollgate.js'
import { DependencyError } from '../../src/errors.js'
import type { TokenStore } from '../../src/token-store/index.js'
import { createRedisTokenStore } from '../../src/token-store/redis.js'
import { bearer, login, pluginOptions, registerAndLogin, storeRedis } from '../helper.js'
import {
  buildWithStore, expectAccessRevoked, expectAccessWorks, expectAllowlist, expectNoContent, expectRefreshRejected,
  expectRefreshWorks, rtKey, userKey
} from '../flows/support.js'

t.test('DELETE /users/me with a wrong password is 401 and deletes nothing', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens } = await registerAndLogin(app)
  const del = (payload?: Record<string, unknown>) => app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(tokens.access_token), ...(payload ? { payload } : {}) })

  const wrong = await del({ password: 'not the password' })
  t.equal(wrong.statusCode, 401)
  t.same(wrong.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'The password is incorrect' })

  const missing = await del({})
  t.equal(missing.statusCode, 400, 'no password: 400')
  t.equal(missing.json().code, 'INVALID_REQUEST')

  const anonymous = await app.inject({ method: 'DELETE', url: '/users/me', payload: { password } })
  t.equal(anonymous.statusCode, 401, 'without a token: 401')
  t.equal(anonymous.json().code, 'INVALID_TOKEN')

  await expectAllowlist(t, store, userId, [tokens.refresh_token], 'after the rejected deletes')
  await expectAccessWorks(t, app, tokens.access_token, userId, 'the session still works')
  await login(app, email, password)
})

t.test('DELETE /users/me ends every session; the email can register again', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const b2 = await expectRefreshWorks(t, app, b.refresh_token, 'B rotates once')
  const stranger = await registerAndLogin(app)
  await expectAllowlist(t, store, userId, [a.refresh_token, b2.refresh_token], 'two sessions')

  const res = await app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(a.access_token), payload: { password } })
  expectNoContent(t, res, 'delete')
  await expectAllowlist(t, store, userId, [], 'after the delete')
  t.equal(await store.redis.exists(rtKey(store, userId)), 0, 'the rt set is gone')
  t.equal(await store.redis.zcard(userKey(store, userId, 'sessions')), 0, 'no session is left')

  for (const [name, token] of [['A', a.access_token], ['B', b.access_token], ['B2', b2.access_token]] as const) {
    await expectAccessRevoked(t, app, token, `${name} access`)
  }
  for (const [name, token] of [['A', a.refresh_token], ['B', b.refresh_token], ['B2', b2.refresh_token]] as const) {
    await expectRefreshRejected(t, app, token, `${name} refresh`)
  }
  await expectAllowlist(t, store, userId, [], 'after the tokens were tried')

  const loginAgain = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
  t.equal(loginAgain.statusCode, 401, 'login fails')
  t.same(loginAgain.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Invalid email or password' })

  await expectAccessWorks(t, app, stranger.tokens.access_token, stranger.userId, 'other users are untouched')

  const again = await registerAndLogin(app, { email, password })
  t.not(again.userId, userId, 'a new account with a new id')
  await expectAccessWorks(t, app, again.tokens.access_token, again.userId, 'the new account works')
  await expectAllowlist(t, store, again.userId, [again.tokens.refresh_token], 'the new account has one session')
  await expectAccessRevoked(t, app, a.access_token, 'the old account tokens stay dead')
  await expectRefreshRejected(t, app, b2.refresh_token, 'the old account refresh stays dead')
})

t.test('the deletion committed but the store could not close the account: 204 all the same, and an error logged', async t => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'error', stream: new Writable({ write (chunk, _enc, done) { lines.push(chunk.toString()); done() } }) } })
  t.teardown(() => app.close())
  const { redis, prefix } = await storeRedis(t)
  const store = createRedisTokenStore({ redis, prefix, idleTtl: 3_600_000, reuseInterval: 10_000, absoluteTtl: 3_600_000 })
  // Redis fails at the last step only, after the deletion has committed.
  const tokenStore: TokenStore = {
    ...store,
    endSessions: async (request) => {
      if (request.closeAccount) throw new DependencyError('redis', new Error('connection lost'))
      return await store.endSessions(request)
    }
  }
  await app.register(tollgate, await pluginOptions(t, { tokenStore }))
  await app.ready()
  const { email, password, tokens } = await registerAndLogin(app)
  const res = await app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(tokens.access_token), payload: { password } })
  t.equal(res.statusCode, 204, 'the account is gone, and the client is told so')
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })).statusCode, 401, 'no such account any more')
  await expectAccessRevoked(t, app, tokens.access_token, 'its sessions ended with it')
  const logged = lines.map(line => JSON.parse(line) as { msg: string, userId?: string })
  t.ok(logged.some(line => line.msg.startsWith('account deleted, but the token store could not')), 'the failed step is logged')
})

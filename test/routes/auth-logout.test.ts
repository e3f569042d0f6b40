// POST /auth/logout and POST /auth/logout-all: which sessions end, and the Redis allowlist after each step.
import t from 'tap'
import { bearer, login, registerAndLogin } from '../helper.js'
import {
  buildWithStore, expectAccessRevoked, expectAccessWorks, expectAllowlist, expectNoContent, expectRefreshRejected,
  expectRefreshWorks, expectRevokedResponse, rtKey, userKey
} from '../flows/support.js'

t.test('logout ends only the session that asked', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token], 'two sessions')

  expectNoContent(t, await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(a.access_token) }), 'logout of A')
  await expectAllowlist(t, store, userId, [b.refresh_token], 'after logout of A')
  await expectAccessRevoked(t, app, a.access_token, 'A access')
  await expectRefreshRejected(t, app, a.refresh_token, 'A refresh')
  await expectAllowlist(t, store, userId, [b.refresh_token], 'after A was tried')

  await expectAccessWorks(t, app, b.access_token, userId, 'B access')
  const b2 = await expectRefreshWorks(t, app, b.refresh_token, 'B refresh')
  await expectAllowlist(t, store, userId, [b2.refresh_token], 'after B rotated')
  await expectAccessWorks(t, app, b2.access_token, userId, 'B new access')
})

t.test('logout with a JSON body: an own refresh_token of another session ends that one too', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const c = await login(app, email, password)
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token, c.refresh_token], 'three sessions')

  const res = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(a.access_token), payload: { refresh_token: b.refresh_token } })
  expectNoContent(t, res, 'logout of A naming B')
  await expectAllowlist(t, store, userId, [c.refresh_token], 'after logout of A and B')
  await expectAccessRevoked(t, app, a.access_token, 'A access')
  await expectAccessRevoked(t, app, b.access_token, 'B access')
  await expectRefreshRejected(t, app, a.refresh_token, 'A refresh')
  await expectRefreshRejected(t, app, b.refresh_token, 'B refresh')
  await expectAccessWorks(t, app, c.access_token, userId, 'C access')
  const c2 = await expectRefreshWorks(t, app, c.refresh_token, 'C refresh')
  await expectAllowlist(t, store, userId, [c2.refresh_token], 'after C rotated')
})

t.test('logout ignores a refresh_token that is invalid, not a refresh token, or of another user', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const c = await login(app, email, password)
  const d = await login(app, email, password)
  const stranger = await registerAndLogin(app)
  const live = [a.refresh_token, b.refresh_token, c.refresh_token, d.refresh_token]
  await expectAllowlist(t, store, userId, live, 'four sessions')

  const cases: Array<[string, { access_token: string, refresh_token: string }, string]> = [
    ['garbage', a, 'not-a-token'],
    ['an access token of another own session', b, d.access_token],
    ["another user's refresh token", c, stranger.tokens.refresh_token]
  ]
  for (const [name, session, presented] of cases) {
    const res = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(session.access_token), payload: { refresh_token: presented } })
    expectNoContent(t, res, `logout with ${name}`)
    live.splice(live.indexOf(session.refresh_token), 1)
    await expectAllowlist(t, store, userId, live, `after logout with ${name}`)
    await expectAccessRevoked(t, app, session.access_token, `the session that logged out with ${name}`)
  }
  await expectAllowlist(t, store, userId, [d.refresh_token], 'only D is left')
  await expectAccessWorks(t, app, d.access_token, userId, 'D access')
  await expectAccessWorks(t, app, stranger.tokens.access_token, stranger.userId, 'the other user')
  await expectAllowlist(t, store, stranger.userId, [stranger.tokens.refresh_token], "the other user's allowlist")
  const d2 = await expectRefreshWorks(t, app, d.refresh_token, 'D refresh')
  await expectAllowlist(t, store, userId, [d2.refresh_token], 'after D rotated')
  await expectRefreshWorks(t, app, stranger.tokens.refresh_token, 'the other user refresh')
})

t.test('logout without a token is 401 and ends nothing', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, tokens } = await registerAndLogin(app)
  const res = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refresh_token: tokens.refresh_token } })
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], 'Bearer realm="tollgate"')
  t.same(res.json(), { statusCode: 401, code: 'INVALID_TOKEN', error: 'Unauthorized', message: 'An access token is required' })
  await expectAllowlist(t, store, userId, [tokens.refresh_token], 'after the rejected logout')
  await expectAccessWorks(t, app, tokens.access_token, userId, 'the session')
})

t.test('logout-all ends every session: all access and refresh tokens stop working', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const c = await login(app, email, password)
  const c2 = await expectRefreshWorks(t, app, c.refresh_token, 'C rotates once')
  const stranger = await registerAndLogin(app)
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token, c2.refresh_token], 'three sessions')

  expectNoContent(t, await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(b.access_token) }), 'logout-all')
  await expectAllowlist(t, store, userId, [], 'after logout-all')
  t.equal(await store.redis.exists(rtKey(store, userId)), 0, 'the rt set is gone')
  t.equal(await store.redis.zcard(userKey(store, userId, 'sessions')), 0, 'no session is left')

  for (const [name, token] of [['A', a.access_token], ['B', b.access_token], ['C', c.access_token], ['C2', c2.access_token]] as const) {
    await expectAccessRevoked(t, app, token, `${name} access`)
  }
  for (const [name, token] of [['A', a.refresh_token], ['B', b.refresh_token], ['C', c.refresh_token], ['C2', c2.refresh_token]] as const) {
    await expectRefreshRejected(t, app, token, `${name} refresh`)
  }
  await expectAllowlist(t, store, userId, [], 'after the tokens were tried')
  const again = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(a.access_token) })
  expectRevokedResponse(t, again, 'logout-all with a revoked token')

  // Other users are untouched, and the user can log in again at once.
  await expectAccessWorks(t, app, stranger.tokens.access_token, stranger.userId, 'the other user')
  await expectAllowlist(t, store, stranger.userId, [stranger.tokens.refresh_token], "the other user's allowlist")
  const fresh = await login(app, email, password)
  await expectAccessWorks(t, app, fresh.access_token, userId, 'a login after logout-all')
  await expectAllowlist(t, store, userId, [fresh.refresh_token], 'after the new login')
  const fresh2 = await expectRefreshWorks(t, app, fresh.refresh_token, 'refresh after logout-all')
  await expectAllowlist(t, store, userId, [fresh2.refresh_token], 'after the new session rotated')
  await expectAccessWorks(t, app, fresh2.access_token, userId, 'the rotated access token after logout-all')
})

t.test('logout-all without a token is 401', async t => {
  const { app } = await buildWithStore(t)
  const res = await app.inject({ method: 'POST', url: '/auth/logout-all' })
  t.equal(res.statusCode, 401)
  t.same(res.json(), { statusCode: 401, code: 'INVALID_TOKEN', error: 'Unauthorized', message: 'An access token is required' })
})

// Cookie mode (REFRESH_COOKIE=true): logout, logout-all and revoke through the refresh-token cookie,
// behind the same CSRF check, end to end with real cookies. Each that ends the browser's session
// expires its cookies; a refused CSRF check ends nothing.
import t, { type Test } from 'tap'
import { bearer, build, type TestApp } from '../helper.js'
import { expectAccessRevoked, expectAccessWorks, expectNoContent, expectOAuthError, jtiOf, sidOf } from '../flows/support.js'
import { CSRF_COOKIE, REFRESH_COOKIE, browser, expectCookiesCleared, expectCsrfRefused, logIn, refreshByCookie, registerUser, setCookies } from './support.js'

async function loggedInBrowser (t: Test, app: TestApp, user?: { email: string, password: string, id: string }) {
  const account = user ?? await registerUser(app)
  const b = browser(app)
  const res = await logIn(b, account.email, account.password)
  t.equal(res.statusCode, 200, 'login: 200')
  return { user: account, b, access: res.json().access_token as string, refreshToken: b.jar.get(REFRESH_COOKIE, '/auth/refresh')?.value as string }
}

t.test('logout with the cookie and the CSRF header ends the session and expires the cookies', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, access } = await loggedInBrowser(t, app)
  const other = await loggedInBrowser(t, app, user)

  const res = await b.request({ method: 'POST', url: '/auth/logout', headers: { ...bearer(access), 'x-csrf-token': b.jar.csrfToken as string } })
  expectNoContent(t, res, 'logout')
  expectCookiesCleared(t, res, 'logout')
  t.equal(b.jar.size, 0, 'the browser holds no cookie of Tollgate any more')
  await expectAccessRevoked(t, app, access, 'the access token')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(other.refreshToken)], 'only the other session is left')
  await expectAccessWorks(t, app, other.access, user.id, 'the other session')
})

t.test('logout with the cookie but without the CSRF header: 403, and the session goes on', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, access, refreshToken } = await loggedInBrowser(t, app)

  expectCsrfRefused(t, await b.request({ method: 'POST', url: '/auth/logout', headers: bearer(access) }), 'no header')
  expectCsrfRefused(t, await b.request({ method: 'POST', url: '/auth/logout', headers: { ...bearer(access), 'x-csrf-token': 'x.y' } }), 'a wrong header')
  await expectAccessWorks(t, app, access, user.id, 'the access token')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(refreshToken)], 'the session is live')
  t.equal((await refreshByCookie(b)).statusCode, 200, 'and its cookie still refreshes')
})

t.test('logout without the cookie (or with refresh_token in the body) works as before, and still expires the cookies', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, access } = await loggedInBrowser(t, app)
  const res = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(access) })
  expectNoContent(t, res, 'bearer only')
  expectCookiesCleared(t, res, 'bearer only')
  await expectAccessRevoked(t, app, access, 'the access token')

  // A body token is used as it is, whatever the cookie says: no CSRF check needed.
  const { b, access: access2 } = await loggedInBrowser(t, app, user)
  const third = await loggedInBrowser(t, app, user)
  const body = await b.request({ method: 'POST', url: '/auth/logout', headers: bearer(access2), payload: { refresh_token: third.refreshToken } })
  expectNoContent(t, body, 'refresh_token in the body')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [], 'the caller\'s session and the body token\'s have ended')
  await expectAccessRevoked(t, app, access2, 'the caller\'s access token')
})

t.test('logout needs the access token, cookie or not', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, refreshToken } = await loggedInBrowser(t, app)
  const res = await b.request({ method: 'POST', url: '/auth/logout', headers: { 'x-csrf-token': b.jar.csrfToken as string } })
  t.equal(res.statusCode, 401, '401 without Authorization')
  t.strictSame(setCookies(res), [], 'no cookie is touched')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(refreshToken)], 'the session is live')
})

t.test('logout-all expires the cookies too', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, access } = await loggedInBrowser(t, app)
  await loggedInBrowser(t, app, user)
  const res = await b.request({ method: 'POST', url: '/auth/logout-all', headers: bearer(access) })
  expectNoContent(t, res, 'logout-all')
  expectCookiesCleared(t, res, 'logout-all')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [], 'every session ended')
})

t.test('revoke with the cookie and the CSRF header ends the session and expires the cookies: a logout without an access token', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, access, refreshToken } = await loggedInBrowser(t, app)
  const other = await loggedInBrowser(t, app, user)

  const res = await b.request({ method: 'POST', url: '/auth/revoke', headers: { 'x-csrf-token': b.jar.csrfToken as string } })
  t.equal(res.statusCode, 200, '200')
  t.equal(res.body, '{}', 'RFC 7009: an empty object')
  expectCookiesCleared(t, res, 'revoke')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(other.refreshToken)], 'the cookie\'s session ended, the other is live')
  t.notOk((await app.tollgate.tokenStore.listSessions(user.id, Date.now())).some(session => session.id === sidOf(refreshToken)), 'its session is gone')
  await expectAccessRevoked(t, app, access, 'its access token')
})

t.test('revoke with the cookie but without the CSRF header: 403, and nothing is revoked', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, access, refreshToken } = await loggedInBrowser(t, app)
  expectCsrfRefused(t, await b.request({ method: 'POST', url: '/auth/revoke' }), 'no header, no body')
  expectCsrfRefused(t, await b.request({
    method: 'POST',
    url: '/auth/revoke',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': `${b.jar.csrfToken as string}x` },
    payload: 'token_type_hint=refresh_token'
  }), 'a wrong header, a form body without a token')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(refreshToken)], 'the session is live')
  await expectAccessWorks(t, app, access, user.id, 'its access token')
})

t.test('revoke with a token in the body works as before and leaves the cookies alone', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, refreshToken } = await loggedInBrowser(t, app)
  const other = await loggedInBrowser(t, app, user)
  const res = await b.request({
    method: 'POST',
    url: '/auth/revoke',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ token: other.access }).toString()
  })
  t.equal(res.statusCode, 200)
  t.strictSame(setCookies(res), [], 'no cookie is touched')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(refreshToken)], 'the body token\'s session ended, the cookie\'s is live')

  const none = await app.inject({ method: 'POST', url: '/auth/revoke' })
  expectOAuthError(t, none, 'invalid_request', 'no token and no cookie')
})

t.test('the CSRF cookie goes to every path, the refresh cookie only to its three routes', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { b } = await loggedInBrowser(t, app)
  for (const url of ['/auth/refresh', '/auth/logout', '/auth/revoke', '/auth/refresh?x=1']) {
    t.match(b.jar.header(url), new RegExp(`^${REFRESH_COOKIE}=[^;]+; ${CSRF_COOKIE}=`), `${url}: both`)
  }
  for (const url of ['/auth/login', '/auth/register', '/auth/logout-all', '/auth/sessions', '/auth/refreshx', '/auth', '/']) {
    t.notMatch(b.jar.header(url) ?? '', REFRESH_COOKIE, `${url}: no refresh cookie`)
  }
})

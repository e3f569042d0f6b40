// Without REFRESH_COOKIE (the default) nothing of cookie mode exists: no cookie is ever set, and the
// cookies a browser might still send (say, after the mode was turned off) are ignored.
import t from 'tap'
import { bearer, build } from '../helper.js'
import { expectNoContent, expectOAuthError, expectTokenResponse, jtiOf } from '../flows/support.js'
import { cookiePaths, CSRF_COOKIE, REFRESH_COOKIE, browser, logIn, registerUser, setCookies } from './support.js'

t.test('cookie mode off: no cookies set, cookies ignored', async t => {
  const app = await build(t)
  const user = await registerUser(app)
  const b = browser(app)

  const login = await logIn(b, user.email, user.password)
  const tokens = expectTokenResponse(t, login, 'login')
  t.strictSame(setCookies(login), [], 'login sets no cookie')
  t.notOk(login.headers['x-csrf-token'], 'nor a CSRF header')

  // What a browser would send if it still had cookie mode's cookies.
  const csrf = 'A'.repeat(22) + '.' + 'B'.repeat(43)
  const cookie = `${REFRESH_COOKIE}=${tokens.refresh_token}; ${CSRF_COOKIE}=${csrf}`
  const cookieOnly = await app.inject({ method: 'POST', url: '/auth/refresh', headers: { cookie, 'x-csrf-token': csrf } })
  expectOAuthError(t, cookieOnly, 'invalid_request', 'refresh with only the cookie: refresh_token is required')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(tokens.refresh_token)], 'nothing rotated')

  const refreshed = await app.inject({ method: 'POST', url: '/auth/refresh', headers: { cookie }, payload: { refresh_token: tokens.refresh_token } })
  const next = expectTokenResponse(t, refreshed, 'refresh with a body token and a cookie')
  t.strictSame(setCookies(refreshed), [], 'refresh sets no cookie')

  const revoke = await app.inject({ method: 'POST', url: '/auth/revoke', headers: { cookie, 'x-csrf-token': csrf } })
  expectOAuthError(t, revoke, 'invalid_request', 'revoke with only the cookie: token is required')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(next.refresh_token)], 'nothing revoked')

  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: { ...bearer(next.access_token), cookie } })
  expectNoContent(t, logout, 'logout with a cookie and no CSRF header: the cookie is not read')
  t.strictSame(setCookies(logout), [], 'logout expires no cookie')

  for (const path of cookiePaths()) t.notOk(b.jar.get(REFRESH_COOKIE, path), `the browser got no cookie for ${path}`)
  t.equal(b.jar.size, 0, 'the browser holds no cookie at all')
})

t.test('cookie mode off: CORS allows no credentials and no X-CSRF-Token', async t => {
  const app = await build(t, { config: { CORS_ORIGINS: 'https://app.example.com' } })
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/auth/refresh',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }
  })
  t.equal(preflight.statusCode, 204)
  t.notOk(preflight.headers['access-control-allow-credentials'], 'no credentials')
  t.notMatch(String(preflight.headers['access-control-allow-headers']), /x-csrf-token/i, 'no X-CSRF-Token')
})

// Cookie mode (REFRESH_COOKIE=true), login and refresh, end to end with real cookies: what login
// sets, rotation through the cookie behind the double-submit CSRF check, refusals that rotate
// nothing, and reuse of a rotated cookie, which ends the session and expires the cookies.
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { HUNG_FOR_MS, appWithHungWrites } from '../faults/hung-writes.js'
import { startRedisServer } from '../faults/redis-server.js'
import { eventually } from '../faults/support.js'
import { bearer, build, type TestApp } from '../helper.js'
import {
  INVALID_GRANT, TOKEN_RESPONSE_KEYS, expectAccessRevoked, expectAccessWorks, expectOAuthError, expectRefreshWorks, expectTokenResponse, jtiOf, sidOf
} from '../flows/support.js'
import {
  cookiePaths, CSRF_COOKIE, REFRESH_COOKIE, browser, expectCookiesCleared, expectCsrfRefused, logIn, refreshByCookie, registerUser, setCookies,
  type Browser
} from './support.js'

const COOKIE_BODY_KEYS = TOKEN_RESPONSE_KEYS.filter(key => key !== 'refresh_token')

/** The refresh token the browser holds (the same at each of its paths, checked where it is set). */
const refreshTokenOf = (b: Browser) => b.jar.get(REFRESH_COOKIE, '/auth/refresh')?.value as string

/** A user logged in through a browser on `app`. */
async function loggedInBrowser (t: Test, app: TestApp) {
  const user = await registerUser(app)
  const b = browser(app)
  const res = await logIn(b, user.email, user.password)
  t.equal(res.statusCode, 200, 'login: 200')
  return { user, b, login: res }
}

t.test('login sets the refresh token cookie and a readable CSRF cookie; the body has no refresh_token', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, login } = await loggedInBrowser(t, app)

  t.equal(login.headers['cache-control'], 'no-store', 'never cached')
  const body = login.json()
  t.strictSame(Object.keys(body).sort(), COOKIE_BODY_KEYS, 'the token response without refresh_token')
  t.equal(body.token_type, 'Bearer')
  await expectAccessWorks(t, app, body.access_token, user.id, 'the access token still travels in Authorization')

  const cookies = setCookies(login)
  const refreshCookies = cookies.filter(cookie => cookie.name === REFRESH_COOKIE)
  t.strictSame(refreshCookies.map(cookie => cookie.path).sort(), cookiePaths().sort(), 'one refresh cookie per route that reads it, scoped by Path')
  const token = refreshCookies[0]?.value as string
  for (const cookie of refreshCookies) {
    t.equal(cookie.value, token, `${cookie.path}: the same refresh token`)
    t.equal(cookie.httpOnly, true, `${cookie.path}: HttpOnly`)
    t.equal(cookie.secure, true, `${cookie.path}: Secure`)
    t.equal(cookie.sameSite, 'Strict', `${cookie.path}: SameSite=Strict`)
    t.equal(cookie.maxAge, body.refresh_expires_in, `${cookie.path}: Max-Age is the session's remaining lifetime`)
    t.notOk(cookie.domain, `${cookie.path}: host-only (no Domain)`)
  }
  t.equal(token.split('.').length, 3, 'the cookie holds the refresh JWT')

  const csrf = cookies.find(cookie => cookie.name === CSRF_COOKIE)
  t.ok(csrf, 'the CSRF cookie is set')
  t.equal(csrf?.path, '/', 'CSRF cookie: Path=/, so every page of the origin can read it')
  t.notOk(csrf?.httpOnly, 'CSRF cookie: readable by scripts')
  t.equal(csrf?.secure, true, 'CSRF cookie: Secure')
  t.equal(csrf?.sameSite, 'Strict', 'CSRF cookie: SameSite=Strict')
  t.equal(csrf?.maxAge, body.refresh_expires_in, 'CSRF cookie: lives as long as the session')
  t.match(csrf?.value, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/, 'CSRF token: a random value and its HMAC')
  t.equal(login.headers['x-csrf-token'], csrf?.value, 'and the X-CSRF-Token response header, for an app on another origin')
  t.equal(cookies.length, 4, 'nothing else is set')

  t.equal(b.jar.header('/auth/refresh'), `${REFRESH_COOKIE}=${token}; ${CSRF_COOKIE}=${csrf?.value}`, 'the browser sends the refresh cookie to /auth/refresh')
  t.equal(b.jar.header('/auth/login'), `${CSRF_COOKIE}=${csrf?.value}`, 'but not to /auth/login')
  t.equal(b.jar.header('/auth/logout-all'), `${CSRF_COOKIE}=${csrf?.value}`, 'nor to /auth/logout-all')
  t.equal(b.jar.header('/users/me'), `${CSRF_COOKIE}=${csrf?.value}`, 'nor to /users/me')
})

t.test('refresh through the cookie with the CSRF header rotates and sets the next cookie', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b } = await loggedInBrowser(t, app)
  const first = refreshTokenOf(b)
  const csrf = b.jar.csrfToken as string

  const res = await refreshByCookie(b)
  t.equal(res.statusCode, 200, '200')
  t.equal(res.headers['cache-control'], 'no-store', 'never cached')
  const body = res.json()
  t.strictSame(Object.keys(body).sort(), COOKIE_BODY_KEYS, 'no refresh_token in the body')
  await expectAccessWorks(t, app, body.access_token, user.id, 'the new access token')

  const second = refreshTokenOf(b)
  t.not(second, first, 'the cookie holds the successor')
  t.equal(sidOf(second), sidOf(first), 'of the same session')
  t.strictSame(b.jar.all(REFRESH_COOKIE).map(cookie => cookie.value), [second, second, second], 'at each of its paths')
  for (const cookie of setCookies(res).filter(c => c.name === REFRESH_COOKIE)) {
    t.equal(cookie.maxAge, body.refresh_expires_in, `${cookie.path}: Max-Age follows the session`)
    t.ok(cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict', `${cookie.path}: HttpOnly, Secure, SameSite=Strict`)
  }
  t.equal(b.jar.csrfToken, csrf, 'the CSRF token stays (other tabs keep working); its cookie is set again with the new Max-Age')
  t.equal(setCookies(res).find(c => c.name === CSRF_COOKIE)?.maxAge, body.refresh_expires_in)
  t.equal(res.headers['x-csrf-token'], csrf, 'and repeated in the X-CSRF-Token header')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(second)], 'the allowlist holds only the successor')

  const again = await refreshByCookie(b)
  t.equal(again.statusCode, 200, 'the successor rotates in turn')
  t.not(refreshTokenOf(b), second)
})

t.test('without the CSRF header, or with a wrong one: 403, and nothing is rotated', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b } = await loggedInBrowser(t, app)
  const token = refreshTokenOf(b)
  const csrf = b.jar.csrfToken as string
  const [nonce, mac] = csrf.split('.') as [string, string]

  const attempts: Array<[string, Record<string, string>]> = [
    ['no X-CSRF-Token', {}],
    ['an empty X-CSRF-Token', { 'x-csrf-token': '' }],
    ['a wrong X-CSRF-Token', { 'x-csrf-token': `${nonce}.${mac.slice(0, -2)}AA` }],
    ['the CSRF token with another random part', { 'x-csrf-token': `${'A'.repeat(22)}.${mac}` }],
    ['the refresh token as X-CSRF-Token', { 'x-csrf-token': token }]
  ]
  for (const [step, headers] of attempts) {
    expectCsrfRefused(t, await b.request({ method: 'POST', url: '/auth/refresh', headers }), step)
  }
  // A header that matches a cookie the attacker planted (a sibling subdomain can write cookies) is
  // no use either: the token is bound to the session by an HMAC.
  const planted = `${'B'.repeat(22)}.${'C'.repeat(43)}`
  expectCsrfRefused(t, await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: `${REFRESH_COOKIE}=${token}; ${CSRF_COOKIE}=${planted}`, 'x-csrf-token': planted }
  }), 'a planted CSRF cookie and the same header')
  // The header alone, without the CSRF cookie: not a double submit.
  expectCsrfRefused(t, await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: `${REFRESH_COOKIE}=${token}`, 'x-csrf-token': csrf }
  }), 'no CSRF cookie')

  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(token)], 'the allowlist still holds the same refresh token')
  t.equal(refreshTokenOf(b), token, 'the browser still holds it')
  const res = await refreshByCookie(b)
  t.equal(res.statusCode, 200, 'and it still works afterwards (strict reuse detection would have ended the session otherwise)')
})

t.test('X-CSRF-Token must equal the CSRF cookie: a valid token in the header and another in the cookie is 403', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b } = await loggedInBrowser(t, app)
  const token = refreshTokenOf(b)
  const csrf = b.jar.csrfToken as string
  expectCsrfRefused(t, await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: `${REFRESH_COOKIE}=${token}; ${CSRF_COOKIE}=something-else`, 'x-csrf-token': csrf }
  }), 'the session\'s CSRF token in the header, another value in the cookie')
  // The double-submit check comes first: an unusable refresh cookie with a mismatch is the 403, and
  // no cookie is cleared.
  expectCsrfRefused(t, await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: `${REFRESH_COOKIE}=not-a-jwt; ${CSRF_COOKIE}=a`, 'x-csrf-token': 'b' }
  }), 'a garbage refresh cookie, header and cookie differing')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(token)], 'nothing rotated')
})

t.test('a refresh that fails for an outage (503) keeps the cookies: the token is still good', async t => {
  const server = await startRedisServer(t)
  // The rotation itself meets the outage (its rate-limit count has passed): the handler's own 503.
  const { app, hangBeforeNextWrite } = await appWithHungWrites(t, server, { refreshCookie: true })
  const user = await registerUser(app)
  const b = browser(app)
  t.equal((await logIn(b, user.email, user.password)).statusCode, 200, 'login: 200')
  hangBeforeNextWrite()
  let res
  try {
    res = await refreshByCookie(b)
  } finally {
    await sleep(HUNG_FOR_MS)
    server.resume()
  }
  t.equal(res.statusCode, 503, 'the rotation hangs: 503')
  t.equal(res.headers['retry-after'], '5')
  t.strictSame(setCookies(res), [], 'no cookie is cleared or set')
  const after = await eventually('the same cookie, once Redis answers', 200, () => refreshByCookie(b))
  t.equal(after.statusCode, 200, 'the same cookie refreshes (the late rotation was dropped)')
})

t.test('the CSRF token of another session does not pass', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b } = await loggedInBrowser(t, app)
  // The attacker's own session: a valid CSRF token, but for another sid.
  const attacker = browser(app)
  await logIn(attacker, user.email, user.password)
  const foreign = attacker.jar.csrfToken as string
  t.not(foreign, b.jar.csrfToken)
  const res = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: `${REFRESH_COOKIE}=${refreshTokenOf(b)}; ${CSRF_COOKIE}=${foreign}`, 'x-csrf-token': foreign }
  })
  expectCsrfRefused(t, res, 'a CSRF token issued for another session')
  t.equal((await refreshByCookie(b)).statusCode, 200, 'the victim\'s session is untouched')
})

t.test('reuse of a rotated cookie ends the session and expires the cookies', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true, REFRESH_REUSE_INTERVAL: 0 } })
  const { user, b } = await loggedInBrowser(t, app)
  // The thief's copy of the browser's cookies, taken before the browser's own refresh.
  const thief = browser(app, b.jar.copy())

  const rotated = await refreshByCookie(b)
  t.equal(rotated.statusCode, 200, 'the browser rotates')
  const access = rotated.json().access_token

  const reuse = await refreshByCookie(thief)
  expectOAuthError(t, reuse, 'invalid_grant', 'the rotated-out cookie is refused')
  expectCookiesCleared(t, reuse, 'the refused cookie')
  t.equal(thief.jar.size, 0, 'the thief\'s jar is empty')

  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [], 'the session is revoked')
  const victim = await refreshByCookie(b)
  t.strictSame(victim.json(), INVALID_GRANT, 'the browser\'s successor is refused too')
  expectCookiesCleared(t, victim, 'and its cookies expired')
  await expectAccessRevoked(t, app, access, 'the access token of the session')
})

t.test('a refresh token in the body still works in cookie mode, and gets its successor in the body', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b } = await loggedInBrowser(t, app)
  const res = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: refreshTokenOf(b) } })
  const tokens = expectTokenResponse(t, res, 'body token')
  t.strictSame(setCookies(res), [], 'no cookie is set: a cross-site form post cannot plant a session in a browser')
  t.notOk(res.headers['x-csrf-token'])
  t.equal(sidOf(tokens.refresh_token), sidOf(refreshTokenOf(b)), 'the same session, rotated')
  const next = await expectRefreshWorks(t, app, tokens.refresh_token, 'the successor, again by body')
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [jtiOf(next.refresh_token)], 'one live refresh token: the newest')

  const form = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'grant_type=refresh_token&refresh_token=spent'
  })
  expectOAuthError(t, form, 'invalid_grant', 'an invalid body token')
  t.strictSame(setCookies(form), [], 'expires no cookie')
})

t.test('no token in the body and no cookie: 400 invalid_request', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  for (const [step, options] of [
    ['no body', {}],
    ['an empty JSON body', { payload: {} }],
    ['grant_type only', { payload: { grant_type: 'refresh_token' } }],
    ['only the CSRF cookie and header', { headers: { cookie: `${CSRF_COOKIE}=x.y`, 'x-csrf-token': 'x.y' } }]
  ] as const) {
    const res = await app.inject({ method: 'POST', url: '/auth/refresh', ...options })
    expectOAuthError(t, res, 'invalid_request', step)
    t.strictSame(setCookies(res), [], `${step}: no cookie`)
  }
  const invalid = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: '' } })
  expectOAuthError(t, invalid, 'invalid_request', 'the body is still validated: an empty refresh_token')
})

t.test('a cookie that is not a valid refresh token: invalid_grant, and the cookies are expired', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { b } = await loggedInBrowser(t, app)
  const csrf = b.jar.csrfToken as string
  const res = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: `${REFRESH_COOKIE}=not-a-jwt; ${CSRF_COOKIE}=${csrf}`, 'x-csrf-token': csrf }
  })
  expectOAuthError(t, res, 'invalid_grant', 'a garbage cookie')
  expectCookiesCleared(t, res, 'a garbage cookie')
})

t.test('the access token works in Authorization whatever the cookies', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const { user, b, login } = await loggedInBrowser(t, app)
  const res = await b.request({ method: 'GET', url: '/users/me', headers: bearer(login.json().access_token) })
  t.equal(res.statusCode, 200)
  t.equal(res.json().id, user.id)
  const none = await b.request({ method: 'GET', url: '/users/me' })
  t.equal(none.statusCode, 401, 'cookies alone authenticate nothing but the refresh routes')
})

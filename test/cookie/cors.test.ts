// Cookie mode and CORS: a browser app on another origin may send its cookies (credentials) and the
// X-CSRF-Token header, and read the X-CSRF-Token response header, only from an origin of CORS_ORIGINS.
import { Writable } from 'node:stream'
import t from 'tap'
import { plainHttpOrigins } from '../../src/refresh-cookie.js'
import type { ConfigInput } from '../../src/config.js'
import { build } from '../helper.js'
import { browser, logIn, refreshByCookie, registerUser } from './support.js'

const APP = 'https://app.example.com'
const OTHER = 'https://evil.example'

t.test('cookie mode: credentials and X-CSRF-Token for the listed origins only, never *', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true, CORS_ORIGINS: `${APP},http://localhost:5173` } })

  const preflight = (origin: string) => app.inject({
    method: 'OPTIONS',
    url: '/auth/refresh',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-csrf-token' }
  })

  const allowed = await preflight(APP)
  t.equal(allowed.statusCode, 204, 'preflight: 204')
  t.equal(allowed.headers['access-control-allow-origin'], APP, 'the origin itself, not *')
  t.equal(allowed.headers['access-control-allow-credentials'], 'true', 'credentials allowed')
  t.match(allowed.headers['access-control-allow-headers'], /x-csrf-token/i, 'X-CSRF-Token allowed')
  t.match(allowed.headers['access-control-allow-methods'], /POST/)
  t.match(allowed.headers.vary, /Origin/i, 'caches keep answers apart by origin')

  const refused = await preflight(OTHER)
  t.notOk(refused.headers['access-control-allow-origin'], 'an unlisted origin gets no grant')
  t.notOk(refused.headers['access-control-allow-credentials'], 'nor credentials')

  // The real requests of an app on another origin.
  const user = await registerUser(app)
  const b = browser(app)
  const login = await b.request({ method: 'POST', url: '/auth/login', headers: { origin: APP }, payload: { email: user.email, password: user.password } })
  t.equal(login.statusCode, 200)
  t.equal(login.headers['access-control-allow-origin'], APP)
  t.equal(login.headers['access-control-allow-credentials'], 'true', 'so the browser keeps the cookies it sets')
  t.match(login.headers['access-control-expose-headers'], /x-csrf-token/i, 'and the script may read X-CSRF-Token: it cannot read another origin\'s cookie')
  t.match(login.headers['access-control-expose-headers'], /retry-after/i, 'and Retry-After')

  const refreshed = await b.request({ method: 'POST', url: '/auth/refresh', headers: { origin: APP, 'x-csrf-token': login.headers['x-csrf-token'] as string } })
  t.equal(refreshed.statusCode, 200, 'refresh through the cookie from the app\'s origin')
  t.equal(refreshed.headers['access-control-allow-credentials'], 'true')

  const foreign = await refreshByCookie(browser(app, b.jar.copy()), b.jar.csrfToken)
  t.equal(foreign.statusCode, 200, 'CORS only withholds the answer from scripts; the CSRF check and SameSite guard the request')
  for (const header of ['access-control-allow-origin', 'access-control-allow-credentials']) t.notOk(foreign.headers[header], `${header}: none without a listed Origin`)
  const evil = await b.request({ method: 'POST', url: '/auth/refresh', headers: { origin: OTHER } })
  t.equal(evil.statusCode, 403, 'a cross-origin request without the CSRF token is refused')
  t.notOk(evil.headers['access-control-allow-origin'], 'and its script cannot read the answer')
})

t.test('cookie mode without CORS_ORIGINS: no CORS at all (a same-origin app needs none)', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const res = await app.inject({
    method: 'OPTIONS',
    url: '/auth/refresh',
    headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-csrf-token' }
  })
  t.notOk(res.headers['access-control-allow-origin'])
  t.notOk(res.headers['access-control-allow-credentials'])
  const user = await registerUser(app)
  const login = await logIn(browser(app), user.email, user.password)
  t.notOk(login.headers['access-control-allow-credentials'])
})

t.test('plainHttpOrigins: http:// origins other than loopback', async t => {
  t.strictSame(plainHttpOrigins([
    'https://app.example.com', 'http://app.example.com', 'http://localhost:5173', 'http://app.localhost', 'http://127.0.0.1:3000',
    'http://[::1]:8080', 'http://localhost.evil.example', 'http://127.0.0.1.evil.example', 'http://10.0.0.5'
  ]), ['http://app.example.com', 'http://localhost.evil.example', 'http://127.0.0.1.evil.example', 'http://10.0.0.5'])
})

t.test('cookie mode warns at boot about http:// CORS origins, loopback excepted', async t => {
  async function bootWarnings (config: ConfigInput): Promise<Array<{ msg: string, origins?: string[] }>> {
    const lines: string[] = []
    const logStream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
    await build(t, { config: { LOG_LEVEL: 'warn', ...config }, logStream })
    return lines.map(line => JSON.parse(line)).filter(entry => /CORS origins/.test(entry.msg))
  }

  const warned = await bootWarnings({ REFRESH_COOKIE: true, CORS_ORIGINS: `${APP},http://app.example.com,http://localhost:5173` })
  t.equal(warned.length, 1, 'one warning')
  t.strictSame(warned[0]?.origins, ['http://app.example.com'], 'naming the http:// origin, not the https:// or loopback one')
  t.match(warned[0]?.msg, /use https:\/\/ origins/)

  t.strictSame(await bootWarnings({ REFRESH_COOKIE: true, CORS_ORIGINS: `${APP},http://localhost:5173,http://127.0.0.1:8080` }), [], 'none for https:// and loopback origins')
  t.strictSame(await bootWarnings({ CORS_ORIGINS: 'http://app.example.com' }), [], 'none without cookie mode (no credentials)')
})

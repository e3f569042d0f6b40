// Cookie mode in a host app: the `refreshCookie` option, cookie Paths under the plugin's `prefix`,
// and a host whose own cookie handling stays its own.
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import tollgate, { type TollgateOptions } from '../../plugins/tollgate.js'
import { bearer, pluginOptions, type TestContext } from '../helper.js'
import { cookiePaths, CSRF_COOKIE, REFRESH_COOKIE, browser, expectCookiesCleared, logIn, refreshByCookie, registerUser, setCookies } from './support.js'

async function host (t: TestContext, options: TollgateOptions, before?: (app: FastifyInstance) => Promise<unknown>): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await before?.(app)
  await app.register(tollgate, options)
  app.get('/host/cookies', async (request) => ({ cookies: (request as { cookies?: unknown }).cookies ?? null }))
  await app.ready()
  return app
}

t.test('under a prefix, the refresh cookie\'s Paths are the prefixed routes', async t => {
  const prefix = '/auth-server'
  const app = await host(t, await pluginOptions(t, { prefix, refreshCookie: true }))
  const user = await registerUser(app, prefix)
  const b = browser(app)
  const login = await logIn(b, user.email, user.password, prefix)
  t.equal(login.statusCode, 200)
  t.notOk('refresh_token' in login.json(), 'no refresh_token in the body')
  t.strictSame(
    setCookies(login).map(c => `${c.name} ${c.path}`).sort(),
    [...cookiePaths(prefix).map(path => `${REFRESH_COOKIE} ${path}`), `${CSRF_COOKIE} /`].sort(),
    'the refresh cookie at <prefix>/auth/refresh, /logout and /revoke; the CSRF cookie at /'
  )
  t.notMatch(b.jar.header('/auth/refresh') ?? '', REFRESH_COOKIE, 'not sent to the unprefixed path')

  const refreshed = await refreshByCookie(b, b.jar.csrfToken, prefix)
  t.equal(refreshed.statusCode, 200, 'refresh through the cookie under the prefix')
  const logout = await b.request({ method: 'POST', url: `${prefix}/auth/logout`, headers: { ...bearer(refreshed.json().access_token), 'x-csrf-token': b.jar.csrfToken as string } })
  t.equal(logout.statusCode, 204, 'logout through the cookie under the prefix')
  expectCookiesCleared(t, logout, 'logout', prefix)
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [], 'the session ended')
})

t.test('the host\'s routes get no cookie parsing from tollgate', async t => {
  const app = await host(t, await pluginOptions(t, { refreshCookie: true }))
  t.notOk(app.hasRequestDecorator('cookies'), 'no request.cookies on the host')
  t.notOk(app.hasReplyDecorator('setCookie'), 'no reply.setCookie on the host')
  const res = await app.inject({ method: 'GET', url: '/host/cookies', headers: { cookie: 'a=1' } })
  t.strictSame(res.json(), { cookies: null }, 'a host route sees no parsed cookies')
})

t.test('a host with its own @fastify/cookie: tollgate uses it, and both work', async t => {
  const app = await host(t, await pluginOptions(t, { refreshCookie: true }), async app => app.register(cookie))
  const own = await app.inject({ method: 'GET', url: '/host/cookies', headers: { cookie: 'a=1' } })
  t.strictSame(own.json(), { cookies: { a: '1' } }, 'the host\'s cookie parsing is its own')
  const user = await registerUser(app)
  const b = browser(app)
  t.equal((await logIn(b, user.email, user.password)).statusCode, 200)
  const res = await refreshByCookie(b)
  t.equal(res.statusCode, 200, 'refresh through the cookie')
  t.equal(setCookies(res).filter(c => c.name === REFRESH_COOKIE).length, 3, 'the next refresh cookie at its three paths')
})

// Login CSRF: a cross-site HTML form can POST urlencoded, multipart or text/plain bodies without a
// preflight. Whatever parsers the host has, none of them may log a victim's browser in.
const CROSS_SITE_FORMS = [
  ['urlencoded', 'application/x-www-form-urlencoded', (email: string, password: string) => new URLSearchParams({ email, password }).toString()],
  ['multipart', 'multipart/form-data; boundary=x', (email: string, password: string) =>
    `--x\r\nContent-Disposition: form-data; name="email"\r\n\r\n${email}\r\n--x\r\nContent-Disposition: form-data; name="password"\r\n\r\n${password}\r\n--x--\r\n`],
  ['text/plain with JSON in it', 'text/plain', (email: string, password: string) => JSON.stringify({ email, password })]
] as const

/** Every cross-site form body to login and register is a 415 that sets no cookie, starts no session and creates no user. */
async function expectFormsRefused (t: Test, app: FastifyInstance) {
  const user = await registerUser(app)
  for (const [name, contentType, body] of CROSS_SITE_FORMS) {
    const login = await app.inject({ method: 'POST', url: '/auth/login', headers: { 'content-type': contentType, origin: 'https://evil.example' }, payload: body(user.email, user.password) })
    t.equal(login.statusCode, 415, `${name} login: 415`)
    t.has(login.json(), { statusCode: 415, code: 'UNSUPPORTED_MEDIA_TYPE', error: 'Unsupported Media Type' }, `${name} login: the documented error`)
    t.strictSame(setCookies(login), [], `${name} login: no cookie set`)
    t.notOk(login.headers['x-csrf-token'], `${name} login: no CSRF token`)

    const email = `form-${name.replace(/\W/g, '')}-${user.email}`
    const register = await app.inject({ method: 'POST', url: '/auth/register', headers: { 'content-type': contentType }, payload: body(email, user.password) })
    t.equal(register.statusCode, 415, `${name} register: 415`)
    t.equal(await app.tollgate.users.findByEmail(email), null, `${name} register: no user`)
  }
  t.strictSame(await app.tollgate.tokenStore.liveRefreshJtis(user.id), [], 'no session was started')
  // The same credentials in JSON still log in.
  t.equal((await logIn(browser(app), user.email, user.password)).statusCode, 200, 'JSON login works')
}

t.test('a host with @fastify/formbody: its routes parse forms, Tollgate\'s JSON routes refuse them (login CSRF)', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(formbody)
  app.post('/host/form', async (request) => request.body)
  await app.register(tollgate, await pluginOptions(t, { refreshCookie: true }))
  await app.ready()

  await expectFormsRefused(t, app)
  const hostForm = await app.inject({ method: 'POST', url: '/host/form', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=1&b=two' })
  t.strictSame(hostForm.json(), { a: '1', b: 'two' }, 'the host\'s own form parsing still works')

  // The OAuth endpoints keep taking forms (RFC 6749 §6), answered in the body, never with cookies.
  const user = await registerUser(app)
  const login = await logIn(browser(app), user.email, user.password)
  const fromCookie = setCookies(login).find(c => c.name === REFRESH_COOKIE)?.value as string
  const refreshed = await app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ refresh_token: fromCookie }).toString() })
  t.equal(refreshed.statusCode, 200, 'refresh takes a form body')
  t.equal(typeof refreshed.json().refresh_token, 'string', 'answered in the body')
  t.strictSame(setCookies(refreshed), [], 'with no cookie')
})

t.test('a host with a catch-all parser and its own text/plain: Tollgate\'s JSON routes refuse them', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  // A lenient host: every body is read as a form, or as JSON when it looks like JSON.
  const lenient = (_request: unknown, body: string, done: (err: null, body: unknown) => void) =>
    done(null, body.startsWith('{') ? JSON.parse(body) : Object.fromEntries(new URLSearchParams(body)))
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, lenient)
  app.addContentTypeParser('*', { parseAs: 'string' }, lenient)
  app.post('/host/any', async (request) => request.body)
  await app.register(tollgate, await pluginOptions(t, { refreshCookie: true }))
  await app.ready()

  await expectFormsRefused(t, app)
  for (const [contentType, payload] of [['application/x-www-form-urlencoded', 'a=1'], ['text/plain', '{"a":"1"}']]) {
    const own = await app.inject({ method: 'POST', url: '/host/any', headers: { 'content-type': contentType }, payload })
    t.strictSame(own.json(), { a: '1' }, `the host's own parser still reads ${contentType}`)
  }
})

t.test('refreshCookie must be a boolean', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(tollgate, { ...await pluginOptions(t), refreshCookie: 'true' as unknown as boolean })
  await t.rejects(async () => { await app.ready() }, /refreshCookie: expected true or false/)
})

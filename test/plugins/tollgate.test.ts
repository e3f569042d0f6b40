import { randomBytes } from 'node:crypto'
import cors from '@fastify/cors'
import formbody from '@fastify/formbody'
import fastifyJwt from '@fastify/jwt'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, type InjectOptions } from 'fastify'
import { Redis } from 'ioredis'
import { Redis as Redis6 } from 'ioredis6'
import t, { type Test } from 'tap'
import tollgate, { redisClientOptions, type TollgateOptions } from '../../plugins/tollgate.js'
import type { RedisClient } from '../../src/redis-client.js'
import type { TokenStore } from '../../src/token-store/index.js'
import { createMemoryTokenStore } from '../../src/token-store/memory.js'
import { INVALID_TOKEN_CHALLENGE, assertErrorShape, assertInvalidGrant, assertRejectedAccessToken } from '../fixtures.js'
import {
  REDIS_URL, bearer, claimsOf, login, pluginOptions, redisClient, refresh, registerAndLogin, tempDir, type TestContext
} from '../helper.js'

// The plugin as other people's Fastify apps register it: `Fastify()` with its defaults, their own
// handlers, routes and plugins, then `app.register(tollgate, {...})`. Nothing of the standalone server.

const NO_CHALLENGE = 'Bearer realm="tollgate"'
const FORM = 'application/x-www-form-urlencoded'
// What Tollgate's helmet headers include; a host's own routes get none of them.
const SECURITY_HEADERS = ['content-security-policy', 'strict-transport-security', 'x-content-type-options', 'x-frame-options']

interface HostSetup {
  /** The host's Fastify options; none by default, as `Fastify()`. */
  server?: FastifyServerOptions
  /** What the host registers before tollgate. */
  before?: (app: FastifyInstance) => Promise<unknown> | unknown
  /** What the host adds after tollgate (its routes behind `app.authenticate`). */
  after?: (app: FastifyInstance) => Promise<unknown> | unknown
}

/**
 * A host app with tollgate registered, ready, closed at teardown. Call it after whatever it uses
 * (database, Redis prefix, clients): teardowns run last first, so the app closes before they go.
 */
async function host (t: TestContext, options: TollgateOptions, setup: HostSetup = {}): Promise<FastifyInstance> {
  const app = Fastify(setup.server)
  t.teardown(() => app.close())
  await setup.before?.(app)
  await app.register(tollgate, options)
  await setup.after?.(app)
  await app.ready()
  return app
}

/** The app as seen under a prefix, for the helpers that call `/auth/…`: only `inject` is used. */
function under (app: FastifyInstance, prefix: string): FastifyInstance {
  const inject = (options: InjectOptions) => app.inject({ ...options, url: `${prefix}${options.url as string}` })
  return { inject } as unknown as FastifyInstance
}

/** A route of the host's own, behind Tollgate's `authenticate`. */
function ordersRoute (app: FastifyInstance) {
  app.get('/orders', { onRequest: [app.authenticate] }, async (request) => ({ owner: request.user.id }))
}

const orders = (app: FastifyInstance, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url: '/orders', headers })

/** The host's own error shape, nothing like Tollgate's. */
function hostErrorHandler (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  return reply.code(error.statusCode ?? 500).send({ host: 'error-handler', message: error.message })
}

function hostNotFound (request: FastifyRequest, reply: FastifyReply) {
  return reply.code(404).send({ host: 'not-found', url: request.url })
}

function assertNoSecurityHeaders (t: Test, headers: Record<string, unknown>, what: string) {
  for (const name of SECURITY_HEADERS) t.notOk(name in headers, `${what}: no ${name} from Tollgate`)
}

t.test('a host with its own handlers and routes, Tollgate under /id', async t => {
  const app = await host(t, await pluginOptions(t, { prefix: '/id' }), {
    before (app) {
      app.setErrorHandler(hostErrorHandler)
      app.setNotFoundHandler(hostNotFound)
      app.get('/hello', async () => ({ hello: 'world' }))
      app.get('/boom', async () => { throw new Error('kaboom') })
    },
    after: ordersRoute
  })
  const id = under(app, '/id')

  t.test('the host\'s own URLs keep the host\'s answers and headers', async t => {
    const unknown = await app.inject({ method: 'GET', url: '/nope' })
    t.equal(unknown.statusCode, 404)
    t.same(unknown.json(), { host: 'not-found', url: '/nope' })

    const boom = await app.inject({ method: 'GET', url: '/boom' })
    t.equal(boom.statusCode, 500)
    t.same(boom.json(), { host: 'error-handler', message: 'kaboom' })

    const hello = await app.inject({ method: 'GET', url: '/hello' })
    t.equal(hello.statusCode, 200)
    t.same(hello.json(), { hello: 'world' })
    assertNoSecurityHeaders(t, hello.headers, 'a host route')
    assertNoSecurityHeaders(t, unknown.headers, 'the host\'s 404')
    assertNoSecurityHeaders(t, boom.headers, 'the host\'s error')

    // Tollgate's own routes do get them.
    const jwks = await app.inject({ method: 'GET', url: '/id/.well-known/jwks.json' })
    t.equal(jwks.statusCode, 200)
    t.match(jwks.headers['content-security-policy'], /default-src 'self'/)
    t.equal(jwks.headers['x-content-type-options'], 'nosniff')
  })

  t.test('Tollgate\'s routes live under /id only', async t => {
    const { userId, email, password, tokens } = await registerAndLogin(id)
    const me = await app.inject({ method: 'GET', url: '/id/users/me', headers: bearer(tokens.access_token) })
    t.equal(me.statusCode, 200)
    t.equal(me.json().id, userId)
    t.equal(me.json().email, email)

    for (const url of ['/auth/login', '/auth/register', '/auth/refresh']) {
      const res = await app.inject({ method: 'POST', url, payload: { email, password } })
      t.equal(res.statusCode, 404, `${url} without the prefix`)
      t.same(res.json(), { host: 'not-found', url }, `${url}: the host's 404`)
    }
    const unprefixedMe = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
    t.same(unprefixedMe.json(), { host: 'not-found', url: '/users/me' })

    const rotated = await refresh(id, tokens.refresh_token)
    t.equal(rotated.statusCode, 200)
    t.equal(rotated.headers['cache-control'], 'no-store')
    const next = rotated.json()
    t.equal((await app.inject({ method: 'GET', url: '/id/users/me', headers: bearer(next.access_token) })).statusCode, 200)

    const logout = await app.inject({ method: 'POST', url: '/id/auth/logout', headers: bearer(next.access_token) })
    t.equal(logout.statusCode, 204)
    assertRejectedAccessToken(t, await app.inject({ method: 'GET', url: '/id/users/me', headers: bearer(next.access_token) }))
    assertInvalidGrant(t, await refresh(id, next.refresh_token))
  })

  t.test('Tollgate\'s error shapes under /id are its own, not the host\'s', async t => {
    const { email, tokens } = await registerAndLogin(id)

    const wrongPassword = await app.inject({ method: 'POST', url: '/id/auth/login', payload: { email, password: 'not the password' } })
    assertErrorShape(t, wrongPassword, 401)
    t.same(wrongPassword.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Invalid email or password' })

    const invalidBody = await app.inject({ method: 'POST', url: '/id/auth/register', payload: { email: 'not-an-email', password: 'correct horse battery staple' } })
    assertErrorShape(t, invalidBody, 400)
    t.equal(invalidBody.json().code, 'INVALID_REQUEST')
    t.match(invalidBody.json().message, /email/)

    const duplicate = await app.inject({ method: 'POST', url: '/id/auth/register', payload: { email, password: 'correct horse battery staple' } })
    assertErrorShape(t, duplicate, 409)
    t.equal(duplicate.json().code, 'EMAIL_TAKEN')

    const noToken = await app.inject({ method: 'GET', url: '/id/users/me' })
    assertErrorShape(t, noToken, 401)
    t.same(noToken.json(), { statusCode: 401, code: 'INVALID_TOKEN', error: 'Unauthorized', message: 'An access token is required' })
    t.equal(noToken.headers['www-authenticate'], NO_CHALLENGE)

    assertRejectedAccessToken(t, await app.inject({ method: 'GET', url: '/id/users/me', headers: bearer('not-a-token') }))
    assertRejectedAccessToken(t, await app.inject({ method: 'GET', url: '/id/users/me', headers: bearer(tokens.refresh_token) }))
    assertInvalidGrant(t, await refresh(id, tokens.access_token))
    assertInvalidGrant(t, await refresh(id, 'not-a-token'))

    const noGrant = await app.inject({ method: 'POST', url: '/id/auth/refresh', payload: {} })
    t.equal(noGrant.statusCode, 400)
    t.same(Object.keys(noGrant.json()).sort(), ['error', 'error_description'])
    t.equal(noGrant.json().error, 'invalid_request')
  })

  t.test('a host route behind app.authenticate', async t => {
    const { userId, tokens } = await registerAndLogin(id)
    const ok = await orders(app, bearer(tokens.access_token))
    t.equal(ok.statusCode, 200)
    t.same(ok.json(), { owner: userId })

    // The 401s go through the host's own error handler, with Tollgate's challenge header.
    const missing = await orders(app)
    t.equal(missing.statusCode, 401)
    t.equal(missing.headers['www-authenticate'], NO_CHALLENGE)
    t.same(missing.json(), { host: 'error-handler', message: 'An access token is required' })

    const garbage = await orders(app, bearer('not-a-token'))
    t.equal(garbage.statusCode, 401)
    t.equal(garbage.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE)
    t.same(garbage.json(), { host: 'error-handler', message: 'The access token is invalid, expired or revoked' })

    t.equal((await app.inject({ method: 'POST', url: '/id/auth/logout', headers: bearer(tokens.access_token) })).statusCode, 204)
    const revoked = await orders(app, bearer(tokens.access_token))
    t.equal(revoked.statusCode, 401, 'a logged-out token is refused on the host\'s route too')
    t.equal(revoked.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE)
  })
})

t.test('under a default host (coercing ajv, removeAdditional, 1 MiB bodies), Tollgate validates as its own', async t => {
  const app = await host(t, await pluginOptions(t), {
    before (app) {
      // The host's own route keeps the host's validation and body limit.
      app.post('/host/echo', {
        schema: { body: { type: 'object', properties: { count: { type: 'integer' }, note: { type: 'string' } }, additionalProperties: false } }
      }, async (request) => request.body)
    }
  })
  const email = `user-${randomBytes(6).toString('hex')}@example.com`
  const password = 'correct horse battery staple'

  t.test('an unknown body field is refused, not removed', async t => {
    const register = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password, role: 'admin' } })
    assertErrorShape(t, register, 400)
    t.equal(register.json().code, 'INVALID_REQUEST')
    t.match(register.json().message, /additional properties/)
    t.equal((await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password } })).statusCode, 201, 'the same body without it')

    const loginExtra = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password, remember: true } })
    assertErrorShape(t, loginExtra, 400)
    const tokens = await login(app, email, password)
    const logoutExtra = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.access_token), payload: { everywhere: true } })
    assertErrorShape(t, logoutExtra, 400)
  })

  t.test('a number where a string is expected is refused, not coerced', async t => {
    const numeric = await app.inject({ method: 'POST', url: '/auth/register', payload: { email: `n-${email}`, password: 123456789012345 } })
    assertErrorShape(t, numeric, 400)
    t.match(numeric.json().message, /password/)

    const loginNumeric = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: 12345678 } })
    assertErrorShape(t, loginNumeric, 400)

    const refreshNumeric = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: 12345678 } })
    t.equal(refreshNumeric.statusCode, 400)
    t.equal(refreshNumeric.json().error, 'invalid_request')
  })

  t.test('a body over 16 KiB is a 413 on Tollgate\'s routes only', async t => {
    const big = 'x'.repeat(17 * 1024)
    for (const url of ['/auth/login', '/auth/register']) {
      const res = await app.inject({ method: 'POST', url, payload: { email, password: big } })
      assertErrorShape(t, res, 413)
      t.same(res.json(), { statusCode: 413, code: 'PAYLOAD_TOO_LARGE', error: 'Payload Too Large', message: 'Payload Too Large' }, url)
    }

    // The host's own route: its 1 MiB limit, its coercing ajv that removes unknown fields.
    const echo = await app.inject({ method: 'POST', url: '/host/echo', payload: { count: '3', note: big, extra: true } })
    t.equal(echo.statusCode, 200)
    t.same(echo.json(), { count: 3, note: big })
  })
})

t.test('a host that uses @fastify/jwt for its own tokens', async t => {
  const app = await host(t, await pluginOptions(t), {
    async before (app) {
      await app.register(fastifyJwt, { secret: 'the host app\'s own secret, nothing to do with tollgate' })
      app.post('/host/token', async () => ({ token: app.jwt.sign({ shop: 'acme' }) }))
      app.get('/host/private', { onRequest: [async (request) => { await request.jwtVerify() }] }, async (request) => ({ user: request.user }))
    },
    after: ordersRoute
  })
  t.ok(app.hasDecorator('jwt'), 'the host\'s own jwt decorator is still there')

  const hostToken = (await app.inject({ method: 'POST', url: '/host/token' })).json().token
  const own = await app.inject({ method: 'GET', url: '/host/private', headers: bearer(hostToken) })
  t.equal(own.statusCode, 200)
  t.match(own.json(), { user: { shop: 'acme' } })

  const { userId, tokens } = await registerAndLogin(app)
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
  t.equal(me.statusCode, 200)
  t.equal(me.json().id, userId)
  t.same((await orders(app, bearer(tokens.access_token))).json(), { owner: userId })

  // Neither accepts the other's tokens.
  assertRejectedAccessToken(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(hostToken) }))
  t.equal((await orders(app, bearer(hostToken))).statusCode, 401)
  // @fastify/jwt answers a token of another algorithm with its own 500, with or without Tollgate.
  const tollgateTokenAtHost = await app.inject({ method: 'GET', url: '/host/private', headers: bearer(tokens.access_token) })
  t.equal(tollgateTokenAtHost.statusCode, 500)
  t.equal(tollgateTokenAtHost.json().code, 'FAST_JWT_INVALID_ALGORITHM', 'refused by the host\'s @fastify/jwt')
})

t.test('a host with @fastify/cors, global @fastify/rate-limit and @fastify/formbody of its own', async t => {
  const app = await host(t, await pluginOptions(t), {
    async before (app) {
      await app.register(cors, { origin: ['https://shop.example'] })
      await app.register(rateLimit, { global: true, max: 1000, timeWindow: 60_000 })
      await app.register(formbody)
      app.get('/hello', async () => ({ hello: 'world' }))
      app.post('/host/form', async (request) => request.body)
    }
  })

  const { tokens } = await registerAndLogin(app)
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }).toString()
  const rotated = await app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'content-type': FORM }, payload: form })
  t.equal(rotated.statusCode, 200, 'refresh takes a form body')
  t.equal(typeof rotated.json().access_token, 'string')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(rotated.json().access_token) })).statusCode, 200)

  const hello = await app.inject({ method: 'GET', url: '/hello', headers: { origin: 'https://shop.example' } })
  t.equal(hello.statusCode, 200)
  t.equal(hello.headers['access-control-allow-origin'], 'https://shop.example', 'the host\'s CORS on the host\'s route')
  t.equal(hello.headers['x-ratelimit-limit'], '1000', 'the host\'s rate limit on the host\'s route')

  const other = await app.inject({ method: 'GET', url: '/hello', headers: { origin: 'https://evil.example' } })
  t.notOk(other.headers['access-control-allow-origin'])

  // Without corsOrigins, the host's policy covers Tollgate's routes (options.ts says so).
  const jwks = await app.inject({ method: 'GET', url: '/.well-known/jwks.json', headers: { origin: 'https://shop.example' } })
  t.equal(jwks.statusCode, 200)
  t.equal(jwks.headers['access-control-allow-origin'], 'https://shop.example')

  const hostForm = await app.inject({ method: 'POST', url: '/host/form', headers: { 'content-type': FORM }, payload: 'a=1&b=two' })
  t.equal(hostForm.statusCode, 200)
  t.same(hostForm.json(), { a: '1', b: 'two' }, 'the host\'s own form parsing still works')
})

t.test('corsOrigins beside a host\'s own @fastify/cors is an option error that says what to do', async t => {
  const options = await pluginOptions(t, { corsOrigins: ['https://shop.example'] })
  const err = await host(t, options, { before: (app) => app.register(cors, { origin: ['https://shop.example'] }) })
    .then(() => null, (err: Error) => err)
  t.equal(err?.name, 'OptionsError')
  t.match(err?.message, /corsOrigins: your app registers @fastify\/cors already.*leave corsOrigins unset/)
})

t.test('options', async t => {
  t.test('a bad value fails app.ready(), naming the option', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(tollgate, { dataDir: await tempDir(t), accessTokenTtl: 5 })
    const err = await app.ready().then(() => null, (err: Error) => err)
    t.ok(err, 'ready() rejects')
    t.equal(err?.name, 'OptionsError')
    t.match(err?.message, /accessTokenTtl/)
    t.notMatch(err?.message, /ACCESS_TOKEN_TTL/, 'in the words of the options, not the environment')
  })

  t.test('an unknown option is refused by name', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(tollgate, { dataDir: await tempDir(t), acessTokenTtl: 600 } as TollgateOptions)
    const err = await app.ready().then(() => null, (err: Error) => err)
    t.ok(err, 'ready() rejects')
    t.equal(err?.name, 'OptionsError')
    t.match(err?.message, /acessTokenTtl: not an option of tollgate/)
  })

  t.test('an unknown option and a bad value are named together', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    const err = await app.register(tollgate, { dataDir: await tempDir(t), acessTokenTtl: 600, refreshReuseInterval: 999 } as TollgateOptions)
      .then(() => null, (err: Error) => err)
    t.ok(err, 'the registration rejects')
    t.equal(err?.name, 'OptionsError')
    t.match(err?.message, /acessTokenTtl: not an option of tollgate/)
    t.match(err?.message, /refreshReuseInterval/)
  })

  t.test('a refused option is named once, not again by the rules that miss it', async t => {
    for (const [options, named, notAgain] of [
      [{ accessTokenAlg: 'HS256', accessTokenSecret: true }, /accessTokenSecret: expected a string/, /required when/],
      [{ redisSentinels: [''], redisSentinelName: 'm' }, /redisSentinels: expected a list of non-empty strings/, /only used with/]
    ] as const) {
      const app = Fastify()
      t.teardown(() => app.close())
      const err = await app.register(tollgate, { dataDir: await tempDir(t), ...options } as unknown as TollgateOptions).then(() => null, (err: Error) => err)
      t.equal(err?.name, 'OptionsError', JSON.stringify(options))
      t.match(err?.message, named)
      t.notMatch(err?.message, notAgain)
    }
  })

  t.test('a redis option that is neither a URL nor a client, or an inherited name, is refused by name', async t => {
    for (const [options, problem] of [
      [{ redis: 42 }, /redis: expected a redis:\/\/ or rediss:\/\/ URL/],
      [{ redis: { url: 'redis://127.0.0.1' } }, /redis: expected a redis:\/\/ URL or an ioredis client/],
      [{ constructor: 'x' }, /constructor: not an option of tollgate/],
      [{ tokenStore: {} }, /tokenStore: expected a TokenStore/],
      [{ tokenStore: createMemoryTokenStore({ idleTtl: 1000, reuseInterval: 0, absoluteTtl: 2000 }), redisWaitReplicas: 1 }, /redisWaitReplicas: applies to Tollgate's own Redis token store/]
    ] as const) {
      const app = Fastify()
      t.teardown(() => app.close())
      app.register(tollgate, { dataDir: await tempDir(t), ...options } as unknown as TollgateOptions)
      const err = await app.ready().then(() => null, (err: Error) => err)
      t.equal(err?.name, 'OptionsError', JSON.stringify(options))
      t.match(err?.message, problem)
    }
  })

  t.test('an empty redis URL means no Redis, as an empty REDIS_URL does', async t => {
    const app = await host(t, { dataDir: await tempDir(t), redis: '' })
    t.equal(app.tollgate.tokenStore.kind, 'memory')
  })

  t.test('issuer, audience and accessTokenTtl reach the tokens', async t => {
    const app = await host(t, await pluginOptions(t, { issuer: 'https://id.shop.example', audience: 'shop-api', accessTokenTtl: 900 }))
    const { tokens } = await registerAndLogin(app)
    const access = claimsOf(tokens.access_token) as { iss: string, aud: string, iat: number, exp: number }
    t.equal(access.iss, 'https://id.shop.example')
    t.equal(access.aud, 'shop-api')
    t.equal(access.exp - access.iat, 900)
    t.equal(tokens.expires_in, 900)
    t.equal(claimsOf(tokens.refresh_token).iss, 'https://id.shop.example')
    t.equal(app.tollgate.config.JWT_ISSUER, 'https://id.shop.example')
  })
})

/** Logs in through a host on the client it owns; after app.close() the client still answers. */
async function hostOwnedClientFlow (t: Test, client: RedisClient) {
  const options = await pluginOptions(t, { redis: client })
  const app = await host(t, options, { after: ordersRoute })
  const { userId, tokens } = await registerAndLogin(app)
  t.same((await orders(app, bearer(tokens.access_token))).json(), { owner: userId })
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
  t.equal(me.statusCode, 200)

  // The sessions are in that Redis, under the prefix.
  const reader = await redisClient(t)
  t.same(await reader.smembers(`${options.redisKeyPrefix}:{${userId}}:rt`), [claimsOf(tokens.refresh_token).jti])

  await app.close()
  t.equal(client.status, 'ready', 'not closed by Tollgate')
  t.equal(await client.ping(), 'PONG')
}

t.test('redis: a client the host owns', async t => {
  t.test('ioredis 5, made with redisClientOptions', async t => {
    const client = new Redis(REDIS_URL, redisClientOptions)
    t.teardown(() => client.disconnect())
    await hostOwnedClientFlow(t, client)
  })

  t.test('ioredis 6', async t => {
    const client = new Redis6(REDIS_URL, redisClientOptions)
    t.teardown(() => client.disconnect())
    await hostOwnedClientFlow(t, client)
  })
})

t.test('tokenStore: a store the host makes is used and not closed', async t => {
  const store = createMemoryTokenStore({ idleTtl: 3_600_000, reuseInterval: 10_000, absoluteTtl: 86_400_000 })
  t.teardown(() => store.close())
  let closed = 0
  const hostStore: TokenStore = { ...store, async close () { closed++ } }
  const options = await pluginOptions(t, { tokenStore: hostStore })
  const app = await host(t, options)
  t.equal(app.tollgate.tokenStore, hostStore)

  const { userId, tokens } = await registerAndLogin(app)
  const { sid, jti } = claimsOf(tokens.refresh_token) as { sid: string, jti: string }
  const sessions = await store.listSessions(userId, Date.now())
  t.same(sessions.map(s => s.id), [sid], 'the session is in the host\'s store')
  t.same(await store.liveRefreshJtis(userId), [jti])
  const reader = await redisClient(t)
  t.same(await reader.keys(`${options.redisKeyPrefix}:{*`), [], 'and not in Redis')

  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.access_token) })).statusCode, 204)
  t.same(await store.listSessions(userId, Date.now()), [], 'logout ends it there')

  await app.close()
  t.equal(closed, 0, 'not closed by Tollgate')
})

t.test('tokenStore: a store written as a class works (its methods are called on it)', async t => {
  class HostStore implements TokenStore {
    readonly kind = 'host-class'
    readonly #inner = createMemoryTokenStore({ idleTtl: 3_600_000, reuseInterval: 10_000, absoluteTtl: 86_400_000 })
    createSession (...args: Parameters<TokenStore['createSession']>) { return this.#inner.createSession(...args) }
    rotate (...args: Parameters<TokenStore['rotate']>) { return this.#inner.rotate(...args) }
    isAccessAllowed (...args: Parameters<TokenStore['isAccessAllowed']>) { return this.#inner.isAccessAllowed(...args) }
    endSession (...args: Parameters<TokenStore['endSession']>) { return this.#inner.endSession(...args) }
    endSessions (...args: Parameters<TokenStore['endSessions']>) { return this.#inner.endSessions(...args) }
    listSessions (...args: Parameters<TokenStore['listSessions']>) { return this.#inner.listSessions(...args) }
    liveRefreshJtis (userId: string) { return this.#inner.liveRefreshJtis(userId) }
    ping () { return this.#inner.ping() }
    close () { return this.#inner.close() }
  }
  const store = new HostStore()
  t.teardown(() => store.close())
  const app = await host(t, await pluginOptions(t, { tokenStore: store, health: true }))
  const { tokens } = await registerAndLogin(app)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })).statusCode, 200)
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  t.equal(ready.json().backends.token_store, 'host-class')
})

t.test('a host with its own @fastify/swagger: Tollgate\'s routes stay out of its document unless docs are on', async t => {
  const app = await host(t, await pluginOptions(t, { prefix: '/id' }), {
    async before (app) {
      await app.register(swagger, { openapi: { info: { title: 'Shop', version: '1.0.0' } } })
      app.get('/products', { schema: { response: { 200: { type: 'array', items: { type: 'string' } } } } }, async () => [])
    }
  })
  const document = app.swagger() as { paths: Record<string, unknown> }
  t.same(Object.keys(document.paths), ['/products'], 'only the host\'s own routes')
})

t.test('docs beside a host\'s own @fastify/swagger is an option error that says what to do', async t => {
  const options = await pluginOptions(t, { prefix: '/id', docs: true })
  const err = await host(t, options, { before: (app) => app.register(swagger, { openapi: { info: { title: 'Shop', version: '1.0.0' } } }) })
    .then(() => null, (err: Error) => err)
  t.equal(err?.name, 'OptionsError')
  t.match(err?.message, /docs: your app registers @fastify\/swagger already.*leave docs unset/)
})

t.test('docs and health: off by default, on when set', async t => {
  t.test('off', async t => {
    const app = await host(t, await pluginOptions(t, { prefix: '/id' }))
    for (const url of ['/id/docs/json', '/id/docs', '/id/health/live', '/id/health/ready']) {
      t.equal((await app.inject({ method: 'GET', url })).statusCode, 404, url)
    }
  })

  t.test('on', async t => {
    const app = await host(t, await pluginOptions(t, { prefix: '/id', docs: true, health: true }), {
      before (app) { app.get('/hello', async () => ({ hello: 'world' })) }
    })
    const docs = await app.inject({ method: 'GET', url: '/id/docs/json' })
    t.equal(docs.statusCode, 200)
    const document = docs.json() as { openapi: string, paths: Record<string, unknown> }
    t.equal(document.openapi, '3.1.0')
    const paths = Object.keys(document.paths)
    t.same(paths.filter(path => !path.startsWith('/id/')), [], 'every path is under /id')
    for (const path of ['/id/auth/login', '/id/auth/refresh', '/id/users/me', '/id/.well-known/jwks.json', '/id/health/ready']) {
      t.ok(paths.includes(path), path)
    }

    const live = await app.inject({ method: 'GET', url: '/id/health/live' })
    t.equal(live.statusCode, 200)
    t.same(live.json(), { status: 'ok' })
    const ready = await app.inject({ method: 'GET', url: '/id/health/ready' })
    t.equal(ready.statusCode, 200)
    t.same(ready.json(), { status: 'ready', checks: { database: 'up', token_store: 'up' }, backends: { database: 'postgresql', token_store: 'redis' } })
    t.notOk(app.hasDecorator('swagger'), 'the docs stay in Tollgate\'s scope')
  })
})

t.test('the host gets authenticate, tollgate and request.user, nothing else', async t => {
  const app = await host(t, await pluginOptions(t))
  t.ok(app.hasDecorator('authenticate'))
  t.ok(app.hasDecorator('tollgate'))
  t.ok(app.hasRequestDecorator('user'))
  for (const name of ['config', 'redis', 'users', 'tokens', 'orm', 'jwt', 'sessions', 'tokenStore', 'passwords', 'rateLimit', 'swagger']) {
    t.notOk(app.hasDecorator(name), `no app.${name}`)
  }
})

t.test('the embedded default (no databaseUrl, no redis) boots in a default host and serves a login', async t => {
  const dataDir = await tempDir(t)
  // `Fastify()`: the default pluginTimeout of 10 s covers PGlite's boot and migration.
  const app = await host(t, { dataDir })
  t.equal(app.tollgate.databaseKind, 'pglite')
  t.equal(app.tollgate.tokenStore.kind, 'memory')

  const { userId, tokens } = await registerAndLogin(app)
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
  t.equal(me.statusCode, 200)
  t.equal(me.json().id, userId)
})

import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import tollgateVerify, { type TollgateVerifyOptions } from '../../plugins/verify.js'
import { REDIS_CLIENT_OPTIONS } from '../../src/redis-client.js'
import { closedPort, forgeAccessToken, freshKeySigner, headerOf, INVALID_TOKEN_CHALLENGE } from '../fixtures.js'
import { REDIS_URL, bearer, build, claimsOf, redisClient, registerAndLogin, tempDir, testKeys, type TestApp, type TestContext } from '../helper.js'

// Another Fastify app, with none of Tollgate's plugins, that protects its own route with
// tollgate/verify: the server's JWKS and Redis (or, said out loud, no Redis), nothing else.

async function jwksOf (...servers: TestApp[]): Promise<{ keys: unknown[] }> {
  const keys = []
  for (const server of servers) keys.push(...(await server.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys)
  return { keys }
}

/** A client as the README says to make one: lazy, not connected yet (the plugin connects it). */
function redisFor (t: TestContext, url = REDIS_URL): Redis {
  const redis = new Redis(url, REDIS_CLIENT_OPTIONS)
  redis.on('error', () => { /* the 503 test expects a dead server */ })
  t.teardown(() => redis.disconnect())
  return redis
}

type OrdersHandler = (request: FastifyRequest) => Promise<unknown>

type HostOptions = Partial<TollgateVerifyOptions> & { handler?: OrdersHandler }

/** Another app with tollgate/verify: by default the server's JWKS inline and its Redis. */
async function hostApp (t: TestContext, server: TestApp, options: HostOptions = {}): Promise<FastifyInstance> {
  const { handler, ...overrides } = options
  const host = Fastify()
  t.teardown(() => host.close())
  const source = overrides.jwksUrl ? {} : { jwks: overrides.jwks ?? await jwksOf(server) }
  const revocation = overrides.acceptRevokedTokensUntilExpiry || overrides.introspection ? {} : { redis: overrides.redis ?? redisFor(t) }
  await host.register(tollgateVerify, {
    ...source,
    ...revocation,
    issuer: server.tollgate.config.JWT_ISSUER,
    audience: server.tollgate.config.JWT_AUDIENCE,
    redisKeyPrefix: server.tollgate.config.REDIS_KEY_PREFIX,
    maxTokenLifetime: server.tollgate.config.ACCESS_TOKEN_TTL,
    ...overrides
  })
  host.get('/orders', { onRequest: [host.authenticate] }, handler ?? (async (request) => request.user))
  await host.ready()
  return host
}

const orders = (host: FastifyInstance, headers: Record<string, string> = {}) => host.inject({ method: 'GET', url: '/orders', headers })

/** A server before and after a signing-key rotation, each with a token of its key. */
async function rotatedServers (t: TestContext) {
  const oldServer = await build(t)
  // Same Redis prefix: the new key's server shares the old one's sessions store, as after a rotation.
  const newServer = await build(t, { keys: testKeys(), config: { REDIS_KEY_PREFIX: oldServer.tollgate.config.REDIS_KEY_PREFIX } })
  const oldToken = (await registerAndLogin(oldServer)).tokens.access_token
  const newToken = (await registerAndLogin(newServer)).tokens.access_token
  return { oldServer, newServer, oldToken, newToken }
}

t.test('a token the server issued opens the other app\'s route, with the user on the request', async t => {
  const server = await build(t)
  const { userId, tokens } = await registerAndLogin(server)
  // The very first request, on a client that was lazy until the plugin registered.
  const host = await hostApp(t, server)
  const res = await orders(host, bearer(tokens.access_token))
  t.equal(res.statusCode, 200)
  const claims = claimsOf(tokens.access_token)
  t.same(res.json(), { id: userId, sid: claims.sid, jti: claims.jti, roles: [], exp: claims.exp })
})

t.test('no token, a malformed one or a refresh token: 401 with the Bearer challenge', async t => {
  const server = await build(t)
  const host = await hostApp(t, server)
  const { tokens } = await registerAndLogin(server)

  for (const [name, headers] of [['no header', {}], ['another scheme', { authorization: 'Basic dXNlcjpwdw==' }]] as const) {
    const missing = await orders(host, headers)
    t.equal(missing.statusCode, 401, name)
    t.equal(missing.headers['www-authenticate'], 'Bearer realm="tollgate"', `${name}: no error in the challenge`)
    t.equal(missing.json().code, 'INVALID_TOKEN', name)
  }

  const rejected: Array<[string, string]> = [['garbage', 'Bearer not-a-token'], ['a refresh token', `Bearer ${tokens.refresh_token}`]]
  for (const [name, authorization] of rejected) {
    const res = await orders(host, { authorization })
    t.equal(res.statusCode, 401, name)
    t.equal(res.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE, name)
    t.equal(res.json().code, 'INVALID_TOKEN', name)
  }
})

t.test('logout and logout-all on the server revoke the token at the other app at once', async t => {
  const server = await build(t)
  const host = await hostApp(t, server)
  const first = await registerAndLogin(server)
  const second = await registerAndLogin(server, { email: `x-${first.email}` })
  const secondAgain = (await server.inject({ method: 'POST', url: '/auth/login', payload: { email: second.email, password: second.password } })).json()

  t.equal((await orders(host, bearer(first.tokens.access_token))).statusCode, 200, 'before logout')
  t.equal((await server.inject({ method: 'POST', url: '/auth/logout', headers: bearer(first.tokens.access_token) })).statusCode, 204)
  t.equal((await orders(host, bearer(first.tokens.access_token))).statusCode, 401, 'after logout')

  t.equal((await orders(host, bearer(second.tokens.access_token))).statusCode, 200, 'another user: untouched')
  t.equal((await orders(host, bearer(secondAgain.access_token))).statusCode, 200, 'second session: before logout-all')
  t.equal((await server.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(secondAgain.access_token) })).statusCode, 204)
  t.equal((await orders(host, bearer(second.tokens.access_token))).statusCode, 401, 'after logout-all: first session')
  t.equal((await orders(host, bearer(secondAgain.access_token))).statusCode, 401, 'after logout-all: second session')
})

t.test('every key in the JWKS verifies (rotation by kid); a key not in it does not', async t => {
  const { oldServer, newServer, oldToken, newToken } = await rotatedServers(t)
  t.not(headerOf(oldToken).kid, headerOf(newToken).kid, 'two keys')

  const both = await hostApp(t, newServer, { jwks: await jwksOf(newServer, oldServer) })
  t.equal((await orders(both, bearer(oldToken))).statusCode, 200, 'old key, still published')
  t.equal((await orders(both, bearer(newToken))).statusCode, 200, 'new key')

  const newOnly = await hostApp(t, newServer, { jwks: await jwksOf(newServer) })
  t.equal((await orders(newOnly, bearer(oldToken))).statusCode, 401, 'old key, withdrawn')
  t.equal((await orders(newOnly, bearer(newToken))).statusCode, 200)
})

t.test('Redis unreachable: 503 through the other app\'s own error handler, never 200', async t => {
  const server = await build(t)
  const { tokens } = await registerAndLogin(server)
  const host = await hostApp(t, server, { redis: redisFor(t, `redis://127.0.0.1:${await closedPort()}`) })
  const res = await orders(host, bearer(tokens.access_token))
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'SERVICE_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '5', 'Retry-After, through the host\'s own handler too')
})

t.test('URLs that decide which tokens pass must be https (or loopback), and numbers must be seconds', async t => {
  const server = await build(t)
  await t.rejects(hostApp(t, server, { jwksUrl: 'http://id.example/.well-known/jwks.json' }), /`jwksUrl` must be an https:\/\/ URL/)
  await t.rejects(hostApp(t, server, { jwksCooldown: -1 }), /`jwksCooldown` must be a number of seconds/)
  await t.rejects(hostApp(t, server, { maxTokenLifetime: Number.NaN }), /`maxTokenLifetime` must be a number of seconds/)
  await t.rejects(hostApp(t, server, { introspection: { url: 'http://id.example/auth/introspect', clientId: 'a', clientSecret: 'b' } }), /`introspection.url` must be an https:\/\/ URL/)
  // Loopback by name only when the whole host is: a host that merely starts like one is anyone's.
  for (const host of ['127.0.0.1.evil.example', 'localhost.evil.example']) {
    await t.rejects(hostApp(t, server, { jwksUrl: `http://${host}/.well-known/jwks.json` }), /`jwksUrl` must be an https:\/\/ URL/, `jwksUrl on ${host}`)
    await t.rejects(hostApp(t, server, { introspection: { url: `http://${host}/auth/introspect`, clientId: 'a', clientSecret: 'b' } }), /`introspection.url` must be an https:\/\/ URL/, `introspection.url on ${host}`)
  }
})

t.test('a JWKS URL that redirects is refused: the keys come from the URL configured only', async t => {
  const server = await build(t)
  const elsewhere = await jwksServer(t, await jwksOf(server))
  const redirecting = Fastify()
  redirecting.get('/jwks.json', async (request, reply) => reply.redirect(elsewhere.url))
  t.teardown(() => redirecting.close())
  const base = await redirecting.listen({ host: '127.0.0.1', port: 0 })
  await t.rejects(hostApp(t, server, { jwksUrl: `${base}/jwks.json` }), /could not fetch the JWKS/)
  t.equal(elsewhere.state.fetches, 0, 'the redirect was not followed')
})

t.test('a JWKS with a key Tollgate cannot have signed with is refused at boot', async t => {
  const server = await build(t)
  const rsa = { kty: 'RSA', kid: 'r1', n: 'AQAB', e: 'AQAB' }
  await t.rejects(hostApp(t, server, { jwks: { keys: [rsa] } }), /unsupported JWK/)
  await t.rejects(hostApp(t, server, { jwks: { keys: [] } }), /the JWKS has no keys/)
  const host = Fastify()
  t.teardown(() => host.close())
  host.register(tollgateVerify, { jwks: await jwksOf(server), redis: redisFor(t) } as never)
  await t.rejects(async () => host.ready(), /`issuer` and `audience` are required/)
})

t.test('revocation is a choice: Redis, or stateless said out loud; neither or both is a boot error', async t => {
  const server = await build(t)
  const neither = Fastify()
  t.teardown(() => neither.close())
  neither.register(tollgateVerify, { jwks: await jwksOf(server), issuer: 'a', audience: 'b' })
  await t.rejects(async () => neither.ready(), /pass `redis` \(a client of the Tollgate server's Redis\).*or `introspection`.*or set `acceptRevokedTokensUntilExpiry: true`.*accepted until it expires/s)
  await t.rejects(hostApp(t, server, { redis: redisFor(t), acceptRevokedTokensUntilExpiry: true }), /not several/)
})

t.test('stateless verification works against a server on the embedded default, and does not see logout', async t => {
  const server = await build(t, { config: { DATABASE_URL: undefined, REDIS_URL: undefined, DATA_DIR: await tempDir(t) } })
  const host = await hostApp(t, server, { acceptRevokedTokensUntilExpiry: true })
  const { userId, tokens } = await registerAndLogin(server)
  const before = await orders(host, bearer(tokens.access_token))
  t.equal(before.statusCode, 200)
  t.equal(before.json().id, userId)
  t.equal((await server.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.access_token) })).statusCode, 204)
  t.equal((await orders(host, bearer(tokens.access_token))).statusCode, 200, 'as its name says: accepted until it expires')
  t.equal((await server.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })).statusCode, 401, 'the server itself refuses it')
})

/** A JWKS endpoint whose keys the test sets, counting the fetches. */
async function jwksServer (t: TestContext, initial: { keys: unknown[] }) {
  const state = { jwks: initial, fetches: 0 }
  const app = Fastify()
  app.get('/.well-known/jwks.json', async () => { state.fetches++; return state.jwks })
  t.teardown(() => app.close())
  const url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/.well-known/jwks.json`
  return { state, url }
}

t.test('jwksUrl: fetched at registration, fetched again for an unknown kid (then at most once per cooldown)', async t => {
  const { oldServer, newServer, oldToken, newToken } = await rotatedServers(t)
  const jwks = await jwksServer(t, await jwksOf(oldServer))
  const host = await hostApp(t, oldServer, { jwksUrl: jwks.url })
  t.equal(jwks.state.fetches, 1, 'fetched at registration')
  t.equal((await orders(host, bearer(oldToken))).statusCode, 200)
  t.equal(jwks.state.fetches, 1, 'a known kid fetches nothing')
  // A known kid whose signature fails is a bad token, not a sign of rotation: no fetch either.
  const badSignature = forgeAccessToken(oldServer, oldToken, { signer: freshKeySigner('EdDSA') })
  t.equal(headerOf(badSignature).kid, headerOf(oldToken).kid, 'the kid is the known one')
  const bad = await orders(host, bearer(badSignature))
  t.equal(bad.statusCode, 401)
  t.equal(bad.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE)
  t.equal(jwks.state.fetches, 1, 'a known kid with a bad signature fetches nothing')

  // The server starts signing with a new key: no restart of the resource server.
  jwks.state.jwks = await jwksOf(newServer, oldServer)
  const [a, b] = await Promise.all([orders(host, bearer(newToken)), orders(host, bearer(newToken))])
  t.equal(a.statusCode, 200, 'the new kid is fetched and verifies')
  t.equal(b.statusCode, 200, 'a concurrent request waits for the same fetch')
  t.equal(jwks.state.fetches, 2, 'one fetch for both')

  const strangeKid = forgeAccessToken(newServer, newToken, { header: { kid: 'not-a-known-kid' } })
  const strange = await orders(host, bearer(strangeKid))
  t.equal(strange.statusCode, 401)
  t.equal(strange.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE)
  t.equal(jwks.state.fetches, 2, 'within the cooldown an unknown kid fetches nothing')
})

t.test('jwksUrl: a key withdrawn from the JWKS stops verifying at the next fetch', async t => {
  const { oldServer, newServer, oldToken, newToken } = await rotatedServers(t)
  const jwks = await jwksServer(t, await jwksOf(oldServer))
  const host = await hostApp(t, oldServer, { jwksUrl: jwks.url })
  t.equal((await orders(host, bearer(oldToken))).statusCode, 200)
  jwks.state.jwks = await jwksOf(newServer)
  t.equal((await orders(host, bearer(newToken))).statusCode, 200, 'the fetch brings the new key…')
  t.equal((await orders(host, bearer(oldToken))).statusCode, 401, '…and drops the withdrawn one')
})

t.test('jwksUrl: keys older than jwksMaxAge are fetched again before the next token, so a withdrawn key stops verifying with no unknown kid to trigger it', async t => {
  const { oldServer, newServer, oldToken, newToken } = await rotatedServers(t)
  const jwks = await jwksServer(t, await jwksOf(newServer, oldServer))
  const host = await hostApp(t, oldServer, { jwksUrl: jwks.url, jwksMaxAge: 1 })
  t.equal((await orders(host, bearer(oldToken))).statusCode, 200)

  // The old key leaked: the server withdraws it. Every token the host sees names a known kid.
  jwks.state.jwks = await jwksOf(newServer)
  const fetched = jwks.state.fetches
  await sleep(1100)
  const [first, second] = await Promise.all([orders(host, bearer(oldToken)), orders(host, bearer(oldToken))])
  t.equal(first.statusCode, 401, 'once the keys are a max age old, the next token waits for the fetch: the withdrawn key is refused')
  t.equal(second.statusCode, 401, 'and so is a concurrent one')
  t.equal(jwks.state.fetches, fetched + 2, 'one fetch for both, the keys being a max age old, and one for the kid now unknown (then at most one per jwksCooldown)')
  t.equal((await orders(host, bearer(newToken))).statusCode, 200, 'the key still published verifies')

  // A fetch that fails keeps the keys in use: the JWKS endpoint is broken, tokens still verify.
  jwks.state.jwks = null as unknown as { keys: unknown[] }
  await sleep(1100)
  t.equal((await orders(host, bearer(newToken))).statusCode, 200, 'after a failed fetch, the keys in use stay')
  t.equal(jwks.state.fetches, fetched + 3, 'that fetch was tried')
})

t.test('jwksMaxAge or jwksCooldown below 1 s is refused: the JWKS would be fetched before every request, or for every forged kid', async t => {
  const server = await build(t)
  await t.rejects(hostApp(t, server, { jwksMaxAge: 0 }), /`jwksMaxAge` must be a number of seconds, 1 or more/)
  await t.rejects(hostApp(t, server, { jwksCooldown: 0 }), /`jwksCooldown` must be a number of seconds, 1 or more/)
  await t.rejects(hostApp(t, server, { jwksCooldown: 0.5 }), /`jwksCooldown` must be a number of seconds, 1 or more/)
})

t.test('jwksUrl: a set that answers replaces the keys in use, even when it has keys this cannot use or none at all', async t => {
  const { oldServer, newServer, oldToken, newToken } = await rotatedServers(t)
  const jwks = await jwksServer(t, await jwksOf(oldServer))
  const warnings: string[] = []
  const host = await hostApp(t, oldServer, { jwksUrl: jwks.url, jwksMaxAge: 1 })
  host.log.warn = ((...args: unknown[]) => { warnings.push(JSON.stringify(args)) }) as typeof host.log.warn
  t.equal((await orders(host, bearer(oldToken))).statusCode, 200)

  // The old key is withdrawn; the new one is published next to a key of a kind the verifier cannot use.
  jwks.state.jwks = { keys: [...(await jwksOf(newServer)).keys, { kty: 'RSA', kid: 'r', n: 'AQAB', e: 'AQAB' }] }
  await sleep(1100)
  t.equal((await orders(host, bearer(oldToken))).statusCode, 401, 'the withdrawn key no longer verifies')
  t.equal((await orders(host, bearer(newToken))).statusCode, 200, 'the usable key of the set does')
  t.ok(warnings.some(line => line.includes('unsupported JWK')), 'the unusable key is logged')

  // The server switched to HS256: it publishes no key, so nothing here can verify.
  jwks.state.jwks = { keys: [] }
  await sleep(1100)
  const refused = await orders(host, bearer(newToken))
  t.equal(refused.statusCode, 401, 'no usable key: every token refused')
  t.equal(refused.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE, 'as an invalid token, not an error')
})

t.test('jwksUrl: the fetch asks proxy caches to revalidate (Cache-Control: no-cache)', async t => {
  const server = await build(t)
  const seen: Array<string | undefined> = []
  const app = Fastify()
  const jwks = await jwksOf(server)
  app.get('/jwks.json', async (request) => { seen.push(request.headers['cache-control']); return jwks })
  t.teardown(() => app.close())
  await hostApp(t, server, { jwksUrl: `${await app.listen({ host: '127.0.0.1', port: 0 })}/jwks.json` })
  t.same(seen, ['no-cache'])
})

t.test('jwksUrl: unreachable, an error status or not a JWKS is a boot error that says so', async t => {
  const server = await build(t)
  await t.rejects(hostApp(t, server, { jwksUrl: `http://127.0.0.1:${await closedPort()}/jwks.json` }), /could not fetch the JWKS at http:\/\/127\.0\.0\.1/)
  const broken = Fastify()
  broken.get('/missing', async (request, reply) => reply.code(404).send({}))
  broken.get('/not-jwks', async () => ({ hello: 'world' }))
  t.teardown(() => broken.close())
  const base = await broken.listen({ host: '127.0.0.1', port: 0 })
  await t.rejects(hostApp(t, server, { jwksUrl: `${base}/missing` }), /answered 404/)
  await t.rejects(hostApp(t, server, { jwksUrl: `${base}/not-jwks` }), /did not return a JWKS/)
  await t.rejects(hostApp(t, server, { jwksUrl: `${base}/not-jwks`, jwks: await jwksOf(server) }), /exactly one of `jwksUrl` and `jwks`/)
})

t.test('request.user is read-only: its roles are shared by every request with the same token', async t => {
  const server = await build(t)
  const host = await hostApp(t, server, {
    handler: async (request) => {
      t.throws(() => request.user.roles.push('admin'), TypeError, 'frozen')
      return request.user
    }
  })
  const { tokens } = await registerAndLogin(server)
  for (let i = 0; i < 2; i++) {
    const res = await orders(host, bearer(tokens.access_token))
    t.same(res.json().roles, [], `request ${i + 1}: no role added`)
  }
})

const INTROSPECTION_SECRET = 'introspection-secret-of-the-resource-server-0123456789'

t.test('introspection as the revocation check: a logout on the server is refused here, and an outage is 503', async t => {
  const server = await build(t, { config: { INTROSPECTION_CLIENTS: `orders-api:${INTROSPECTION_SECRET}` } })
  const base = await server.listen({ host: '127.0.0.1', port: 0 })
  const introspection = { url: `${base}/auth/introspect`, clientId: 'orders-api', clientSecret: INTROSPECTION_SECRET, cacheTtl: 0 }
  const host = await hostApp(t, server, { jwksUrl: `${base}/.well-known/jwks.json`, introspection })
  const { userId, tokens } = await registerAndLogin(server)
  const before = await orders(host, bearer(tokens.access_token))
  t.equal(before.statusCode, 200)
  t.equal(before.json().id, userId)
  t.equal((await server.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.access_token) })).statusCode, 204)
  const after = await orders(host, bearer(tokens.access_token))
  t.equal(after.statusCode, 401, 'refused once the server says inactive')
  t.equal(after.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE)

  const wrongSecret = await hostApp(t, server, { jwksUrl: `${base}/.well-known/jwks.json`, introspection: { ...introspection, clientSecret: 'x'.repeat(40) } })
  const fresh = await registerAndLogin(server)
  const refused = await orders(wrongSecret, bearer(fresh.tokens.access_token))
  t.equal(refused.statusCode, 503, 'credentials the server refuses: never a pass')

  const unreachable = await hostApp(t, server, { jwksUrl: `${base}/.well-known/jwks.json`, introspection: { ...introspection, url: `http://127.0.0.1:${await closedPort()}/auth/introspect` } })
  const down = await orders(unreachable, bearer(fresh.tokens.access_token))
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'SERVICE_UNAVAILABLE')
})

t.test('introspection answers are cached: one call for repeated requests within cacheTtl', async t => {
  const server = await build(t, { config: { INTROSPECTION_CLIENTS: `orders-api:${INTROSPECTION_SECRET}` } })
  // Each introspection counts once against the client's rate limit: that counter tells the calls.
  const redis = await redisClient(t)
  const calls = async () => Number(await redis.get(`${server.tollgate.config.REDIS_KEY_PREFIX}:rl:{client:orders-api}`) ?? 0)
  const base = await server.listen({ host: '127.0.0.1', port: 0 })
  const host = await hostApp(t, server, {
    jwks: await jwksOf(server),
    introspection: { url: `${base}/auth/introspect`, clientId: 'orders-api', clientSecret: INTROSPECTION_SECRET, cacheTtl: 300 }
  })
  const { tokens } = await registerAndLogin(server)
  for (let i = 0; i < 3; i++) t.equal((await orders(host, bearer(tokens.access_token))).statusCode, 200)
  t.equal(await calls(), 1, 'one introspection for three requests with the same token')
})

t.test('an introspection URL that redirects is refused: the answer comes from the URL configured only', async t => {
  const server = await build(t)
  const { tokens } = await registerAndLogin(server)
  // Says active to anything, counting the calls (before any body parsing: a 415 would hide a call).
  const elsewhere = { calls: 0 }
  const yes = Fastify()
  yes.addHook('onRequest', async (request, reply) => { elsewhere.calls++; return reply.send({ active: true }) })
  t.teardown(() => yes.close())
  const target = `${await yes.listen({ host: '127.0.0.1', port: 0 })}/auth/introspect`
  const redirecting = Fastify()
  redirecting.addHook('onRequest', async (request, reply) => reply.redirect(target, 307))
  t.teardown(() => redirecting.close())
  const base = await redirecting.listen({ host: '127.0.0.1', port: 0 })
  const host = await hostApp(t, server, {
    jwks: await jwksOf(server),
    introspection: { url: `${base}/auth/introspect`, clientId: 'orders-api', clientSecret: INTROSPECTION_SECRET, cacheTtl: 0 }
  })
  const res = await orders(host, bearer(tokens.access_token))
  t.equal(res.statusCode, 503, 'never a pass')
  t.equal(res.json().code, 'SERVICE_UNAVAILABLE')
  t.equal(elsewhere.calls, 0, 'the redirect was not followed')
})

t.test('concurrent requests with one token share one introspection call', async t => {
  const server = await build(t, { config: { INTROSPECTION_CLIENTS: `orders-api:${INTROSPECTION_SECRET}` } })
  const redis = await redisClient(t)
  const calls = async () => Number(await redis.get(`${server.tollgate.config.REDIS_KEY_PREFIX}:rl:{client:orders-api}`) ?? 0)
  const base = await server.listen({ host: '127.0.0.1', port: 0 })
  const host = await hostApp(t, server, {
    jwks: await jwksOf(server),
    introspection: { url: `${base}/auth/introspect`, clientId: 'orders-api', clientSecret: INTROSPECTION_SECRET, cacheTtl: 300 }
  })
  const { tokens } = await registerAndLogin(server)
  const answers = await Promise.all(Array.from({ length: 20 }, async () => await orders(host, bearer(tokens.access_token))))
  t.same(answers.map(res => res.statusCode), Array(20).fill(200))
  t.equal(await calls(), 1, 'one call for twenty concurrent requests')

  // A call that fails is not remembered: the next request asks again.
  const other = await registerAndLogin(server)
  await server.close()
  const down = await Promise.all([orders(host, bearer(other.tokens.access_token)), orders(host, bearer(other.tokens.access_token))])
  t.same(down.map(res => res.statusCode), [503, 503], 'both wait for the one call, which fails: 503')
})

t.test('an introspection answer that is not an object is a 503, never a 500', async t => {
  const server = await build(t)
  const { tokens } = await registerAndLogin(server)
  for (const body of ['null', '"yes"', '[]', '{}', '{"active":"true"}']) {
    const fake = Fastify()
    // Answered before any body parsing (a 415 would be refused for its status instead).
    fake.addHook('onRequest', async (request, reply) => reply.code(200).type('application/json').send(body))
    t.teardown(() => fake.close())
    const base = await fake.listen({ host: '127.0.0.1', port: 0 })
    const host = await hostApp(t, server, {
      jwks: await jwksOf(server),
      introspection: { url: `${base}/auth/introspect`, clientId: 'orders-api', clientSecret: INTROSPECTION_SECRET, cacheTtl: 0 }
    })
    const res = await orders(host, bearer(tokens.access_token))
    t.equal(res.statusCode, 503, `answer ${body}: 503`)
    t.equal(res.headers['retry-after'], '5', `answer ${body}: Retry-After`)
  }
})

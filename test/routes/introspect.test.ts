// POST /auth/introspect (RFC 7662): HTTP Basic client authentication (RFC 6749 §2.3.1, RFC 7617),
// the claims of a live access token, exactly {active: false} for anything else, the rate limits and
// a Redis outage. Registered only with INTROSPECTION_CLIENTS.
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { parseIntrospectionClients } from '../../src/config.js'
import { forgeAccessToken, forgeRefreshToken, freshKeySigner, hmacSigner, noSigner, nowSeconds, publicKeyPem } from '../fixtures.js'
import { bearer, build, claimsOf, login, registerAndLogin, type TestApp, type TokenPair } from '../helper.js'
import { buildWithStore, expectAccessWorks, expectNoContent, expectOAuthError, jtiOf, sidOf } from '../flows/support.js'
import { startRedisServer } from '../faults/redis-server.js'
import { eventually, expectUnavailable } from '../faults/support.js'

type Response = Awaited<ReturnType<FastifyInstance['inject']>>

interface Client { id: string, secret: string }

// A plain client, and one whose id and secret need RFC 6749 §2.3.1 form-urlencoding: `~` in the id
// (%7E), and in the secret `:` `%` `+` a space `/` `=` and a non-ASCII letter. A literal "%20" in the
// secret catches a server that decodes twice, or a client that does not encode.
const PLAIN: Client = { id: 'resource-server', secret: `rs-${randomBytes(24).toString('hex')}` }
const ODD: Client = { id: 'billing~api.v2_x', secret: `p:ss%20w+rd/=é ${randomBytes(12).toString('hex')}:%+` }
const CLIENTS = `${PLAIN.id}:${PLAIN.secret},${ODD.id}:${ODD.secret}`

const FORM = 'application/x-www-form-urlencoded'
// RFC 7662 §2.3: RFC 6749 §5.2's answer.
const INVALID_CLIENT = { error: 'invalid_client', error_description: 'Client authentication failed' }
const BASIC_CHALLENGE = 'Basic realm="tollgate", charset="UTF-8"'
const RATE_LIMITED = { statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests', message: 'Too many requests; retry after the time in Retry-After' }
const ACTIVE_KEYS = ['active', 'aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'roles', 'sid', 'sub', 'token_type']

/** application/x-www-form-urlencoded encoding of one value (WHATWG URL: space as +, ~ as %7E). */
const formEncode = (value: string) => new URLSearchParams([['', value]]).toString().slice(1)
const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')

/** The Authorization header as RFC 6749 §2.3.1 makes it: id and secret form-urlencoded, then Basic. */
const basic = (client: Client) => `Basic ${base64(`${formEncode(client.id)}:${formEncode(client.secret)}`)}`

interface IntrospectOptions {
  authorization?: string
  form?: boolean
  remoteAddress?: string
}

/** POST /auth/introspect: `body` as JSON (any value) or, with `form`, form-urlencoded from string fields. */
function introspect (app: FastifyInstance, body: unknown, options: IntrospectOptions = {}) {
  const { authorization = basic(PLAIN), form = false, remoteAddress } = options
  const headers: Record<string, string> = authorization ? { authorization } : {}
  if (form) headers['content-type'] = FORM
  return app.inject({
    method: 'POST',
    url: '/auth/introspect',
    headers,
    payload: form ? new URLSearchParams(body as Record<string, string>).toString() : body as Record<string, unknown>,
    ...(remoteAddress && { remoteAddress })
  })
}

function expectNoStore (t: Test, res: Response, step: string) {
  t.equal(res.headers['cache-control'], 'no-store', `${step}: cache-control: no-store`)
  t.equal(res.headers.pragma, 'no-cache', `${step}: pragma: no-cache`)
}

/** 200, no-store, and exactly the claims of `accessToken` (RFC 7662 §2.2). */
function expectActive (t: Test, res: Response, accessToken: string, step: string) {
  t.equal(res.statusCode, 200, `${step}: 200`)
  t.match(res.headers['content-type'], /^application\/json/, `${step}: JSON`)
  expectNoStore(t, res, step)
  const body = res.json()
  t.strictSame(Object.keys(body).sort(), ACTIVE_KEYS, `${step}: exactly the RFC 7662 members`)
  // Every claim the token carries, unchanged, plus the two members introspection adds.
  t.strictSame(body, { ...claimsOf(accessToken), active: true, token_type: 'Bearer' }, `${step}: the token's own claims`)
}

/** 200, no-store, exactly {active: false}, and nothing of the token in the answer. */
function expectInactive (t: Test, res: Response, token: string, step: string) {
  t.equal(res.statusCode, 200, `${step}: 200`)
  t.match(res.headers['content-type'], /^application\/json/, `${step}: JSON`)
  expectNoStore(t, res, step)
  t.equal(res.body, '{"active":false}', `${step}: exactly {"active":false}`)
  let claims: Record<string, unknown> = {}
  try { claims = claimsOf(token) } catch {}
  for (const name of ['sub', 'sid', 'jti']) {
    const value = claims[name]
    if (typeof value === 'string') t.notOk(res.body.includes(value), `${step}: the answer does not carry the token's ${name}`)
  }
}

function expectInvalidClient (t: Test, res: Response, step: string) {
  t.equal(res.statusCode, 401, `${step}: 401`)
  t.match(res.headers['content-type'], /^application\/json/, `${step}: JSON`)
  t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE, `${step}: the Basic challenge`)
  t.strictSame(res.json(), INVALID_CLIENT, `${step}: the invalid-client body`)
  expectNoStore(t, res, step)
}

function expectRateLimited (t: Test, res: Response, step: string) {
  t.equal(res.statusCode, 429, `${step}: 429`)
  t.match(res.headers['retry-after'], /^[1-9][0-9]*$/, `${step}: Retry-After in whole seconds`)
  t.ok(Number(res.headers['retry-after']) <= 60, `${step}: Retry-After within the window`)
  t.strictSame(res.json(), RATE_LIMITED, `${step}: the 429 body`)
}

const withClients = (config: Record<string, string | number> = {}) => ({ INTROSPECTION_CLIENTS: CLIENTS, ...config })

async function liveRefreshJtis (app: TestApp, userId: string) {
  return (await app.tollgate.tokenStore.liveRefreshJtis(userId)).sort()
}

t.test('the clients of this file are what INTROSPECTION_CLIENTS accepts', async t => {
  t.strictSame(parseIntrospectionClients(CLIENTS), new Map([[PLAIN.id, PLAIN.secret], [ODD.id, ODD.secret]]))
  t.ok(ODD.secret.length >= 32 && PLAIN.secret.length >= 32, 'secrets of 32+ characters')
  t.not(formEncode(ODD.id), ODD.id, 'the odd id needs encoding')
  t.not(formEncode(ODD.secret), ODD.secret, 'the odd secret needs encoding')
})

t.test('without INTROSPECTION_CLIENTS the endpoint does not exist: 404', async t => {
  for (const [name, config] of [['unset', {}], ['empty (= unset)', { INTROSPECTION_CLIENTS: '' }]] as const) {
    const app = await build(t, { config })
    const { tokens } = await registerAndLogin(app)
    for (const [what, authorization] of [['with Basic credentials', basic(PLAIN)], ['without credentials', '']] as const) {
      const res = await introspect(app, { token: tokens.access_token }, { authorization })
      t.equal(res.statusCode, 404, `${name}, ${what}: 404`)
      t.strictSame(res.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'Route POST /auth/introspect not found' }, `${name}, ${what}: the 404 body`)
      t.notOk('www-authenticate' in res.headers, `${name}, ${what}: no challenge`)
    }
    const form = await introspect(app, { token: tokens.access_token }, { form: true })
    t.equal(form.statusCode, 404, `${name}: a form body too`)
  }
})

t.test('a live access token is active, with its claims; introspection changes nothing', async t => {
  const app = await build(t, { config: withClients() })
  const { userId, email, password, tokens } = await registerAndLogin(app)
  const other = await login(app, email, password)
  const before = await liveRefreshJtis(app, userId)

  expectActive(t, await introspect(app, { token: tokens.access_token }), tokens.access_token, 'JSON, plain client')
  expectActive(t, await introspect(app, { token: tokens.access_token }, { form: true }), tokens.access_token, 'form, plain client')
  expectActive(t, await introspect(app, { token: other.access_token, token_type_hint: 'access_token' }), other.access_token, 'hint access_token')
  expectActive(t, await introspect(app, { token: other.access_token, token_type_hint: 'refresh_token' }, { form: true }), other.access_token, 'a wrong hint is ignored')
  const claims = claimsOf(tokens.access_token)
  t.equal(claims.sub, userId, 'sub is the user')
  t.equal(claims.sid, sidOf(tokens.refresh_token), 'sid is the session')

  // The client whose id and secret need form-urlencoding.
  expectActive(t, await introspect(app, { token: tokens.access_token }, { authorization: basic(ODD) }), tokens.access_token, 'odd client, JSON')
  expectActive(t, await introspect(app, { token: tokens.access_token }, { authorization: basic(ODD), form: true }), tokens.access_token, 'odd client, form')
  t.ok(Buffer.from(basic(ODD).slice('Basic '.length), 'base64').toString('utf8').startsWith('billing%7Eapi.v2_x:'), 'the odd id was sent encoded (%7E)')
  // `~` is unreserved: sent as it is, it decodes to itself.
  const rawId = `Basic ${base64(`${ODD.id}:${formEncode(ODD.secret)}`)}`
  expectActive(t, await introspect(app, { token: tokens.access_token }, { authorization: rawId }), tokens.access_token, 'odd client, id not encoded')
  // RFC 7235 §2.1: the scheme is case-insensitive.
  const lower = basic(PLAIN).replace(/^Basic/, 'basic')
  expectActive(t, await introspect(app, { token: tokens.access_token }, { authorization: lower }), tokens.access_token, 'scheme "basic"')

  // A rotation: the new access token is active; the session lives on.
  const rotated = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: other.refresh_token } })
  t.equal(rotated.statusCode, 200, 'the other session rotates')
  const next = rotated.json() as TokenPair
  expectActive(t, await introspect(app, { token: next.access_token }), next.access_token, 'the rotated access token')

  // Introspection only reads.
  t.strictSame(await liveRefreshJtis(app, userId), [jtiOf(tokens.refresh_token), jtiOf(next.refresh_token)].sort(), 'the allowlist holds the same sessions')
  t.equal(before.length, 2, 'two sessions before')
  await expectAccessWorks(t, app, tokens.access_token, userId, 'the introspected token')
  expectActive(t, await introspect(app, { token: tokens.access_token }), tokens.access_token, 'asked again')
})

t.test('anything but a live access token is exactly {active: false}', async t => {
  const app = await build(t, { config: withClients() })
  const { userId, email, password, tokens } = await registerAndLogin(app)
  const ended = await login(app, email, password)
  expectNoContent(t, await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(ended.access_token) }), 'a session that logged out')
  const now = nowSeconds()
  const access = tokens.access_token
  const publicPem = publicKeyPem(app.testKeys.accessPrivateKey)

  const inactive: Array<[string, string]> = [
    ['a live refresh token', tokens.refresh_token],
    ['a live refresh token re-signed as HS256 with another key', forgeRefreshToken(app, tokens.refresh_token, { signer: hmacSigner('sha256', randomBytes(32)) })],
    ['garbage', 'not-a-token'],
    ['a JWT-shaped string', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'],
    ['4096 characters', 'x'.repeat(4096)],
    ['alg none', forgeAccessToken(app, access, { header: { alg: 'none' }, signer: noSigner })],
    ['a fresh Ed25519 key', forgeAccessToken(app, access, { signer: freshKeySigner('EdDSA') })],
    ['an RS256 key of its own', forgeAccessToken(app, access, { header: { alg: 'RS256' }, signer: freshKeySigner('RS256') })],
    ['HS256 with the public key as secret', forgeAccessToken(app, access, { header: { alg: 'HS256' }, signer: hmacSigner('sha256', publicPem) })],
    ['HS256 with the refresh secret', forgeAccessToken(app, access, { header: { alg: 'HS256' }, signer: hmacSigner('sha256', app.testKeys.refreshSecret) })],
    ['expired', forgeAccessToken(app, access, { claims: { iat: now - 1200, exp: now - 600 } })],
    ['another issuer', forgeAccessToken(app, access, { claims: { iss: 'someone-else' } })],
    ['another audience', forgeAccessToken(app, access, { claims: { aud: 'another-api' } })],
    ['no sid', forgeAccessToken(app, access, { claims: { sid: undefined } })],
    ['a made-up session', forgeAccessToken(app, access, { claims: { sid: '00000000-0000-4000-8000-000000000000' } })],
    ['the signature cut off', access.slice(0, access.lastIndexOf('.') + 1)],
    ['the access token of a logged-out session', ended.access_token],
    ['the refresh token of a logged-out session', ended.refresh_token],
    ['a token of another deployment', forgeAccessToken(app, access, { signer: freshKeySigner('EdDSA'), header: { kid: 'elsewhere' } })]
  ]
  for (const [name, token] of inactive) {
    expectInactive(t, await introspect(app, { token }), token, `${name} (JSON)`)
    expectInactive(t, await introspect(app, { token, token_type_hint: 'refresh_token' }, { form: true }), token, `${name} (form, hint refresh_token)`)
  }

  // The control: the same forgery with nothing changed is a valid access token, and it is active.
  const control = forgeAccessToken(app, access)
  expectActive(t, await introspect(app, { token: control }), control, 'an unchanged forgery')
  await expectAccessWorks(t, app, access, userId, 'the session was not touched')
})

t.test('inactive at once after logout, logout-all, revoke and the end of a session', async t => {
  const { app } = await buildWithStore(t, withClients())
  const user = await registerAndLogin(app)
  const more: TokenPair[] = []
  for (let i = 0; i < 5; i++) more.push(await login(app, user.email, user.password))
  const [a, b, c, d, e] = more as [TokenPair, TokenPair, TokenPair, TokenPair, TokenPair]
  const witness = user.tokens
  const all = [witness, ...more]
  for (const [i, s] of all.entries()) expectActive(t, await introspect(app, { token: s.access_token }), s.access_token, `session ${i} before`)

  expectNoContent(t, await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(a.access_token) }), 'logout of A')
  expectInactive(t, await introspect(app, { token: a.access_token }), a.access_token, 'A after logout')

  t.equal((await app.inject({ method: 'POST', url: '/auth/revoke', payload: { token: b.refresh_token } })).statusCode, 200, 'revoke B by its refresh token')
  expectInactive(t, await introspect(app, { token: b.access_token }), b.access_token, 'B after its refresh token was revoked')

  t.equal((await app.inject({ method: 'POST', url: '/auth/revoke', payload: { token: c.access_token, token_type_hint: 'access_token' } })).statusCode, 200, 'revoke C by its access token')
  expectInactive(t, await introspect(app, { token: c.access_token }), c.access_token, 'C after it was revoked')

  expectNoContent(t, await app.inject({ method: 'DELETE', url: `/auth/sessions/${sidOf(d.refresh_token)}`, headers: bearer(witness.access_token) }), 'the witness ends D')
  expectInactive(t, await introspect(app, { token: d.access_token }), d.access_token, 'D after DELETE /auth/sessions/:id')

  for (const [i, s] of [witness, e].entries()) expectActive(t, await introspect(app, { token: s.access_token }), s.access_token, `untouched session ${i}`)

  expectNoContent(t, await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(e.access_token) }), 'logout-all')
  for (const [i, s] of all.entries()) expectInactive(t, await introspect(app, { token: s.access_token }), s.access_token, `session ${i} after logout-all`)
  t.strictSame(await liveRefreshJtis(app, user.userId), [], 'no live session')

  const fresh = await login(app, user.email, user.password)
  expectActive(t, await introspect(app, { token: fresh.access_token }), fresh.access_token, 'a new login after logout-all')
})

t.test('client authentication: 401 with a Basic challenge, whatever is wrong', async t => {
  const app = await build(t, { config: withClients() })
  const { userId, tokens } = await registerAndLogin(app)
  const token = tokens.access_token

  const cases: Array<[string, string]> = [
    ['no Authorization header', ''],
    ['a Bearer token instead of Basic', bearer(token).authorization],
    ['a Bearer token of the client secret', `Bearer ${PLAIN.secret}`],
    ['an unknown id', basic({ id: 'nobody', secret: PLAIN.secret })],
    // The secret an unknown id is compared with (so that it costs the same time) is in the source.
    ['an unknown id with the stand-in secret of unknown ids', basic({ id: 'nobody', secret: 'tollgate: no such client' })],
    ['a known id with the stand-in secret of unknown ids', basic({ id: PLAIN.id, secret: 'tollgate: no such client' })],
    ['the id in another case', basic({ id: PLAIN.id.toUpperCase(), secret: PLAIN.secret })],
    ['the right id, a wrong secret', basic({ id: PLAIN.id, secret: `${PLAIN.secret}x` })],
    ['the right id, its secret cut by one', basic({ id: PLAIN.id, secret: PLAIN.secret.slice(0, -1) })],
    ['the right id, an empty secret', basic({ id: PLAIN.id, secret: '' })],
    ['the right id, the other client\'s secret', basic({ id: PLAIN.id, secret: ODD.secret })],
    ['the odd secret not form-urlencoded', `Basic ${base64(`${ODD.id}:${ODD.secret}`)}`],
    ['the odd secret encoded twice', `Basic ${base64(`${formEncode(ODD.id)}:${formEncode(formEncode(ODD.secret))}`)}`],
    ['the odd secret with + for a space taken literally', `Basic ${base64(`${ODD.id}:${formEncode(ODD.secret).replaceAll('+', '%2B')}`)}`],
    ['an invalid percent-escape', `Basic ${base64(`${PLAIN.id}:%zz${PLAIN.secret}`)}`],
    ['no colon', `Basic ${base64(`${PLAIN.id}${PLAIN.secret}`)}`],
    ['id and secret swapped', basic({ id: PLAIN.secret, secret: PLAIN.id })],
    ['malformed base64', 'Basic !!!not-base64!!!'],
    ['base64 of the pair with its last character removed', basic(PLAIN).replace(/=+$/, '').slice(0, -1)],
    ['the scheme alone', 'Basic'],
    ['the scheme and a space', 'Basic '],
    ['credentials without a scheme', base64(`${PLAIN.id}:${PLAIN.secret}`)],
    ['two credentials', `${basic(PLAIN)}, ${basic(ODD)}`],
    ['Digest', `Digest username="${PLAIN.id}"`]
  ]
  for (const [name, authorization] of cases) {
    const res = await introspect(app, { token }, { authorization })
    expectInvalidClient(t, res, name)
    t.notOk(res.body.includes(userId), `${name}: nothing of the token`)
  }

  // Authentication comes before the body: no credentials and no token is still the 401.
  expectInvalidClient(t, await introspect(app, {}, { authorization: '' }), 'no credentials, no token')
  expectInvalidClient(t, await introspect(app, { token }, { authorization: '', form: true }), 'no credentials, a form body')
  await expectAccessWorks(t, app, token, userId, 'the token is untouched')
})

t.test('no token, or a malformed body, with a valid client: 400 invalid_request', async t => {
  const app = await build(t, { config: withClients() })
  const { tokens } = await registerAndLogin(app)
  const json = (payload: string) => app.inject({ method: 'POST', url: '/auth/introspect', headers: { authorization: basic(PLAIN), 'content-type': 'application/json' }, payload })
  const cases: Array<[string, () => Promise<Response>]> = [
    ['no token (JSON {})', () => introspect(app, {})],
    ['only a hint', () => introspect(app, { token_type_hint: 'access_token' })],
    ['only a hint (form)', () => introspect(app, { token_type_hint: 'access_token' }, { form: true })],
    ['an empty token', () => introspect(app, { token: '' })],
    ['an empty token (form)', () => introspect(app, { token: '' }, { form: true })],
    ['no body at all', () => app.inject({ method: 'POST', url: '/auth/introspect', headers: { authorization: basic(PLAIN) } })],
    ['a token of 4097 characters', () => introspect(app, { token: tokens.access_token + 'x'.repeat(4097 - tokens.access_token.length) })],
    ['a number', () => introspect(app, { token: 12345678 })],
    ['an array holding a live access token', () => introspect(app, { token: [tokens.access_token] })],
    ['null', () => introspect(app, { token: null })],
    ['a hint of 65 characters', () => introspect(app, { token: tokens.access_token, token_type_hint: 'a'.repeat(65) })],
    ['malformed JSON', () => json(`{"token":"${tokens.access_token}"`)],
    ['a repeated form field', () => app.inject({
      method: 'POST',
      url: '/auth/introspect',
      headers: { authorization: basic(PLAIN), 'content-type': FORM },
      payload: `token=${tokens.access_token}&token=${tokens.access_token}`
    })],
    ['text/plain', () => app.inject({ method: 'POST', url: '/auth/introspect', headers: { authorization: basic(PLAIN), 'content-type': 'text/plain' }, payload: `token=${tokens.access_token}` })]
  ]
  for (const [name, send] of cases) {
    const res = await send()
    expectOAuthError(t, res, 'invalid_request', name)
    t.notOk('active' in res.json(), `${name}: no active member`)
  }
  t.match((await introspect(app, {})).json().error_description, /token/, 'error_description names token')
})

t.test('rate limited per client (INTROSPECTION_RATE_LIMIT_MAX), across addresses', async t => {
  const app = await build(t, { config: withClients({ INTROSPECTION_RATE_LIMIT_MAX: 2 }) })
  const { tokens } = await registerAndLogin(app)
  const token = tokens.access_token
  // Each request from an address of its own, so only the client's allowance is in play.
  let address = 10
  const from = () => ({ remoteAddress: `127.0.0.${address++}` })

  // Failed authentication does not spend a client's allowance (nobody can lock a client out).
  for (let i = 0; i < 3; i++) {
    expectInvalidClient(t, await introspect(app, { token }, { authorization: basic({ id: PLAIN.id, secret: 'wrong'.repeat(8) }), ...from() }), `wrong secret ${i}`)
  }
  expectActive(t, await introspect(app, { token }, from()), token, 'plain client, first')
  expectInactive(t, await introspect(app, { token: 'not-a-token' }, from()), 'not-a-token', 'plain client, second')
  expectRateLimited(t, await introspect(app, { token }, from()), 'plain client, third')
  expectRateLimited(t, await introspect(app, { token }, { form: true, ...from() }), 'plain client, fourth, form')
  // A limited request says nothing about the token, even with a malformed body.
  expectRateLimited(t, await introspect(app, {}, from()), 'plain client, no token')

  // The other client has its own allowance.
  expectActive(t, await introspect(app, { token }, { authorization: basic(ODD), ...from() }), token, 'odd client, first')
  expectActive(t, await introspect(app, { token }, { authorization: basic(ODD), ...from() }), token, 'odd client, second')
  expectRateLimited(t, await introspect(app, { token }, { authorization: basic(ODD), ...from() }), 'odd client, third')
  // Wrong credentials for a limited client are still a 401, not a 429 that would confirm the id.
  expectInvalidClient(t, await introspect(app, { token }, { authorization: basic({ id: ODD.id, secret: PLAIN.secret }), ...from() }), 'wrong secret of a limited client')
})

t.test('an authenticated client from one address gets its whole allowance: RATE_LIMIT_MAX does not apply', async t => {
  // A resource server introspects its users' tokens from one address (tollgate/verify's
  // introspection mode asks again for each token every few seconds).
  const app = await build(t, { config: withClients({ RATE_LIMIT_MAX: 2, INTROSPECTION_RATE_LIMIT_MAX: 5 }) })
  const { tokens } = await registerAndLogin(app)
  for (let i = 1; i <= 5; i++) expectActive(t, await introspect(app, { token: tokens.access_token }), tokens.access_token, `introspection ${i}`)
  expectRateLimited(t, await introspect(app, { token: tokens.access_token }), 'the sixth: over the client\'s allowance')
})

t.test('rate limited per address (one client\'s allowance), before client authentication', async t => {
  const app = await build(t, { config: withClients({ INTROSPECTION_RATE_LIMIT_MAX: 3 }) })
  const { tokens } = await registerAndLogin(app)
  const token = tokens.access_token
  const guesser = '127.0.0.21'

  for (let i = 0; i < 3; i++) {
    expectInvalidClient(t, await introspect(app, { token }, { authorization: basic({ id: PLAIN.id, secret: `guess-${i}`.repeat(6) }), remoteAddress: guesser }), `guess ${i}`)
  }
  expectRateLimited(t, await introspect(app, { token }, { authorization: basic({ id: PLAIN.id, secret: 'guess-3'.repeat(6) }), remoteAddress: guesser }), 'the fourth guess')
  expectRateLimited(t, await introspect(app, { token }, { remoteAddress: guesser }), 'even the right secret, from that address')
  expectRateLimited(t, await introspect(app, { token }, { authorization: '', remoteAddress: guesser }), 'no credentials, from that address')

  expectActive(t, await introspect(app, { token }, { remoteAddress: '127.0.0.22' }), token, 'another address')
  expectActive(t, await introspect(app, { token }, { authorization: basic(ODD), remoteAddress: '127.0.0.22' }), token, 'another address, the other client')
})

/** The masked 503 of an outage, and neither active nor inactive. */
function expectIntrospectionUnavailable (t: Test, res: Response, step: string) {
  expectUnavailable(t, res, step)
  t.notMatch(res.body, /active/, `${step}: neither active nor inactive`)
}

t.test('a Redis outage is 503 with Retry-After: never active, never inactive', async t => {
  const server = await startRedisServer(t)
  const { app, store } = await buildWithStore(t, withClients({ REDIS_URL: server.url }), server.url)
  store.redis.on('error', () => {})
  const { tokens } = await registerAndLogin(app)
  const ended = (await registerAndLogin(app)).tokens
  expectNoContent(t, await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(ended.access_token) }), 'a session that logged out')

  server.pause()
  try {
    expectIntrospectionUnavailable(t, await introspect(app, { token: tokens.access_token }), 'hung: a live token')
    expectIntrospectionUnavailable(t, await introspect(app, { token: ended.access_token }, { form: true }), 'hung: a revoked token')
    expectIntrospectionUnavailable(t, await introspect(app, { token: 'not-a-token' }, { authorization: basic(ODD) }), 'hung: garbage')
  } finally {
    server.resume()
  }
  expectActive(t, await eventually('introspect after SIGCONT', 200, () => introspect(app, { token: tokens.access_token })), tokens.access_token, 'the live token after the outage')
  expectInactive(t, await introspect(app, { token: ended.access_token }), ended.access_token, 'the revoked token after the outage')

  await server.kill()
  expectIntrospectionUnavailable(t, await introspect(app, { token: tokens.access_token }), 'killed: a live token')
  expectIntrospectionUnavailable(t, await introspect(app, { token: ended.access_token }), 'killed: a revoked token')
})

t.test('an HS256 deployment: its own access tokens are active, an EdDSA one inactive', async t => {
  const app = await build(t, { config: withClients({ ACCESS_TOKEN_ALG: 'HS256', ACCESS_TOKEN_SECRET: randomBytes(32).toString('base64url') }) })
  const { tokens } = await registerAndLogin(app)
  expectActive(t, await introspect(app, { token: tokens.access_token }), tokens.access_token, 'an HS256 access token')
  const eddsa = forgeAccessToken(app, tokens.access_token, { header: { alg: 'EdDSA' }, signer: freshKeySigner('EdDSA') })
  expectInactive(t, await introspect(app, { token: eddsa }), eddsa, 'an EdDSA token')
})

/** A build whose server logger writes into `lines`. */
async function buildLogged (t: Test, config: Record<string, string | number>) {
  const lines: string[] = []
  const logStream = new Writable({ write (chunk, _enc, done) { lines.push(chunk.toString()); done() } })
  const app = await build(t, { config: { ...config }, logStream })
  return { app, log: () => lines.join('') }
}

t.test('no token and no client secret reaches the logs, at the most verbose level', async t => {
  const { app, log } = await buildLogged(t, withClients({ LOG_LEVEL: 'trace' }))
  const { email, password, tokens } = await registerAndLogin(app)
  const other = await login(app, email, password)
  expectActive(t, await introspect(app, { token: tokens.access_token }, { authorization: basic(ODD) }), tokens.access_token, 'introspect')
  expectInvalidClient(t, await introspect(app, { token: tokens.access_token }, { authorization: basic({ id: ODD.id, secret: 'wrong'.repeat(8) }) }), 'a wrong secret')
  expectOAuthError(t, await introspect(app, { token: 1 }), 'invalid_request', 'a malformed introspection')
  t.equal((await app.inject({ method: 'POST', url: '/auth/revoke', payload: { token: other.refresh_token } })).statusCode, 200, 'revoke (JSON)')
  t.equal((await app.inject({ method: 'POST', url: '/auth/revoke', headers: { 'content-type': FORM }, payload: `token=${tokens.access_token}` })).statusCode, 200, 'revoke (form)')
  expectInactive(t, await introspect(app, { token: tokens.access_token }, { form: true }), tokens.access_token, 'introspect the revoked token')

  const text = log()
  t.ok(text.includes('/auth/introspect') && text.includes('/auth/revoke'), 'the requests were logged')
  for (const [name, secret] of [
    ['the access token', tokens.access_token], ['the refresh token', other.refresh_token],
    ['a signature', tokens.access_token.split('.')[2] as string], ['the client secret', ODD.secret],
    ['the client secret as sent', formEncode(ODD.secret)], ['the Basic credentials', basic(ODD).slice('Basic '.length)]
  ]) {
    t.notOk(text.includes(secret as string), `the log does not contain ${name}`)
  }
})

// src/server.ts: "Never logged: ... every token or password field of a body or reply", including
// the `token` field of RFC 7009 and RFC 7662 bodies.
t.test('the server logger redacts the token field of revocation and introspection bodies', async t => {
  const { app, log } = await buildLogged(t, { LOG_LEVEL: 'info' })
  app.log.info({ body: { token: 'revoke-body-secret', token_type_hint: 'refresh_token' } }, 'a careless log call')
  app.log.info({ token: 'top-level-secret' }, 'another one')
  t.match(log(), /a careless log call/)
  t.notOk(log().includes('revoke-body-secret'), 'body.token is redacted')
  t.notOk(log().includes('top-level-secret'), 'token is redacted')
})

import { randomBytes } from 'node:crypto'
import t from 'tap'
import { assertErrorShape, assertInvalidToken, ed25519Signer, forgeAccessToken, headerOf, hmacSigner, jwt, noSigner, nowSeconds, publicKeyPem } from '../fixtures.js'
import { bearer, build, claimsOf, registerAndLogin, testKeys } from '../helper.js'

t.test('GET /users/me returns the user of a valid access token', async t => {
  const app = await build(t)
  const { tokens, email, userId } = await registerAndLogin(app)
  const res = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()).sort(), ['created_at', 'email', 'email_verified', 'id', 'name'])
  t.equal(res.json().email_verified, false)
  t.equal(res.json().email, email)
  t.equal(res.json().id, userId)
})

t.test('GET /users/me without a token is a 401 with WWW-Authenticate: Bearer', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/users/me' })
  t.equal(res.statusCode, 401)
  t.match(res.headers['www-authenticate'], /^Bearer /)
  t.same(res.json(), { statusCode: 401, code: 'INVALID_TOKEN', error: 'Unauthorized', message: 'An access token is required' })
})

t.test('GET /users/me rejects every invalid access token with the same 401', async t => {
  const ttl = 600
  const app = await build(t, { config: { ACCESS_TOKEN_TTL: ttl } })
  const { tokens } = await registerAndLogin(app)
  const real = tokens.access_token
  const now = nowSeconds()
  const me = (authorization: string) => app.inject({ method: 'GET', url: '/users/me', headers: { authorization } })

  // Controls: the forging below is right, so each rejection is down to the one thing changed.
  t.test('control: a token forged with the app key and valid claims is accepted', async t => {
    const res = await me(`Bearer ${forgeAccessToken(app, real)}`)
    t.equal(res.statusCode, 200)
  })
  t.test('control: a token that expired within the 30 s leeway is still accepted', async t => {
    const res = await me(`Bearer ${forgeAccessToken(app, real, { claims: { iat: now - ttl + 10, exp: now - 10 } })}`)
    t.equal(res.statusCode, 200)
  })

  const [headerPart, payloadPart, signaturePart] = real.split('.') as [string, string, string]
  const tamperedPayload = Buffer.from(JSON.stringify({ ...claimsOf(real), roles: ['admin'] })).toString('base64url')

  const cases: Array<[string, string]> = [
    ['an expired token (beyond the leeway)', `Bearer ${forgeAccessToken(app, real, { claims: { iat: now - ttl - 100, exp: now - 100 } })}`],
    ['a tampered token (payload changed, signature kept)', `Bearer ${headerPart}.${tamperedPayload}.${signaturePart}`],
    ['a token whose signature is cut off', `Bearer ${headerPart}.${payloadPart}.`],
    ['an HS256 token keyed with the public key PEM (key confusion)', `Bearer ${forgeAccessToken(app, real, {
      header: { alg: 'HS256' },
      signer: hmacSigner('sha256', publicKeyPem(app.testKeys.accessPrivateKey))
    })}`],
    ['an alg "none" token', `Bearer ${forgeAccessToken(app, real, { header: { alg: 'none' }, signer: noSigner })}`],
    ['an alg "none" token without kid or typ', `Bearer ${jwt({ alg: 'none' }, claimsOf(forgeAccessToken(app, real)), noSigner)}`],
    ['a token signed by another Ed25519 key', `Bearer ${forgeAccessToken(app, real, { signer: ed25519Signer(testKeys().accessPrivateKey) })}`],
    ['a token with an unknown kid', `Bearer ${forgeAccessToken(app, real, { header: { kid: 'someone-else' } })}`],
    ['a refresh token used as a bearer token', `Bearer ${tokens.refresh_token}`],
    ['a wrong iss', `Bearer ${forgeAccessToken(app, real, { claims: { iss: 'https://evil.example' } })}`],
    ['a wrong aud', `Bearer ${forgeAccessToken(app, real, { claims: { aud: 'another-api' } })}`],
    ['typ "JWT" instead of "at+jwt"', `Bearer ${forgeAccessToken(app, real, { header: { typ: 'JWT' } })}`],
    ['typ "rt+jwt"', `Bearer ${forgeAccessToken(app, real, { header: { typ: 'rt+jwt' } })}`],
    ['no typ', `Bearer ${forgeAccessToken(app, real, { header: { typ: undefined } })}`],
    ['iat far in the future', `Bearer ${forgeAccessToken(app, real, { claims: { iat: now + 3600, exp: now + 3600 + ttl } })}`],
    ['exp - iat longer than ACCESS_TOKEN_TTL', `Bearer ${forgeAccessToken(app, real, { claims: { iat: now, exp: now + ttl + 60 } })}`],
    ['exp = 1e400 (parsed as Infinity)', `Bearer ${jwt(headerOf(real), JSON.stringify({ ...claimsOf(forgeAccessToken(app, real)), exp: 0 }).replace('"exp":0', '"exp":1e400'), ed25519Signer(app.testKeys.accessPrivateKey))}`],
    ['exp far in the future', `Bearer ${forgeAccessToken(app, real, { claims: { exp: now + 10 * 365 * 86400 } })}`],
    ['iat a string', `Bearer ${forgeAccessToken(app, real, { claims: { iat: String(now) } })}`],
    ['no exp', `Bearer ${forgeAccessToken(app, real, { claims: { exp: undefined } })}`],
    ['no jti', `Bearer ${forgeAccessToken(app, real, { claims: { jti: undefined } })}`],
    ['no sub', `Bearer ${forgeAccessToken(app, real, { claims: { sub: undefined } })}`],
    ['sub not a UUID', `Bearer ${forgeAccessToken(app, real, { claims: { sub: 'not-a-uuid' } })}`],
    ['sub an object', `Bearer ${forgeAccessToken(app, real, { claims: { sub: { $ne: null } } })}`],
    ['a malformed header: "Bearer" alone', 'Bearer'],
    ['a malformed header: "Bearer " and spaces', 'Bearer   '],
    ['a malformed header: two tokens', `Bearer ${real} ${real}`],
    ['a malformed header: two Bearer credentials', `Bearer ${real}, Bearer ${real}`],
    ['not a JWT', 'Bearer not-a-jwt'],
    ['a JWT with bad base64 JSON', 'Bearer eyJub3Q.anNvbg.c2ln']
  ]
  for (const [name, authorization] of cases) {
    t.test(`401 for ${name}`, async t => {
      assertInvalidToken(t, await me(authorization))
    })
  }
  t.test('401 for another scheme (Basic), which presents no access token: a challenge without an error (RFC 6750 §3.1)', async t => {
    const res = await me('Basic xyz')
    assertErrorShape(t, res, 401)
    t.equal(res.headers['www-authenticate'], 'Bearer realm="tollgate"')
    t.same(res.json(), { statusCode: 401, code: 'INVALID_TOKEN', error: 'Unauthorized', message: 'An access token is required' })
  })
})

t.test('GET /users/me on an HS256 deployment pins the algorithm', async t => {
  const secret = randomBytes(32).toString('base64url')
  const app = await build(t, { config: { ACCESS_TOKEN_ALG: 'HS256', ACCESS_TOKEN_SECRET: secret } })
  const { tokens } = await registerAndLogin(app)
  const real = tokens.access_token
  t.equal(headerOf(real).alg, 'HS256')
  const me = (token: string) => app.inject({ method: 'GET', url: '/users/me', headers: bearer(token) })

  t.test('control: an HS256 token forged with the secret is accepted', async t => {
    const res = await me(forgeAccessToken(app, real, { signer: hmacSigner('sha256', secret) }))
    t.equal(res.statusCode, 200)
  })
  t.test('401 for a token signed HS512 with the same secret', async t => {
    assertInvalidToken(t, await me(forgeAccessToken(app, real, { header: { alg: 'HS512' }, signer: hmacSigner('sha512', secret) })))
  })
  t.test('401 for an EdDSA token signed with the (unused) configured private key', async t => {
    assertInvalidToken(t, await me(forgeAccessToken(app, real, { header: { alg: 'EdDSA' } })))
  })
  t.test('401 for an alg "none" token', async t => {
    assertInvalidToken(t, await me(forgeAccessToken(app, real, { header: { alg: 'none' }, signer: noSigner })))
  })
  t.test('401 for an HS256 token signed with the refresh secret', async t => {
    assertInvalidToken(t, await me(forgeAccessToken(app, real, { signer: hmacSigner('sha256', app.testKeys.refreshSecret) })))
  })
})

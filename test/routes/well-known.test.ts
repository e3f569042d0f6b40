import { createPublicKey, randomBytes, type JsonWebKey } from 'node:crypto'
import { createVerifier } from 'fast-jwt'
import t from 'tap'
import { headerOf, publicKeyPem } from '../fixtures.js'
import { build, registerAndLogin } from '../helper.js'

t.test('GET /.well-known/jwks.json publishes exactly the public Ed25519 key', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const jwks = res.json()
  t.same(Object.keys(jwks), ['keys'])
  t.equal(jwks.keys.length, 1, 'exactly one key')
  const jwk = jwks.keys[0]
  t.same(Object.keys(jwk).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'])
  t.has(jwk, { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
  t.type(jwk.x, 'string')
  t.type(jwk.kid, 'string')
  t.ok(jwk.kid.length > 0, 'kid is not empty')
  t.notOk('d' in jwk, 'no private member d')
  t.notMatch(res.body, /PRIVATE KEY|"d"/, 'nothing private anywhere')

  t.test('the key is the public half of the configured private key', async t => {
    const published = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString()
    t.equal(published, publicKeyPem(app.testKeys.accessPrivateKey))
  })

  t.test('an access token from login verifies with the JWK alone', async t => {
    const { tokens, userId } = await registerAndLogin(app)
    t.equal(headerOf(tokens.access_token).kid, jwk.kid, 'the token names the published kid')
    const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString()
    const verify = createVerifier({ key, algorithms: ['EdDSA'], allowedIss: 'tollgate', allowedAud: 'tollgate-api', checkTyp: 'at+jwt' })
    const claims = verify(tokens.access_token)
    t.equal(claims.sub, userId)

    t.test('and a refresh token does not', async t => {
      t.throws(() => verify(tokens.refresh_token))
    })
  })
})

t.test('an HS256 deployment publishes no key', async t => {
  const app = await build(t, { config: { ACCESS_TOKEN_ALG: 'HS256', ACCESS_TOKEN_SECRET: randomBytes(32).toString('base64url') } })
  const res = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(res.json(), { keys: [] })
})

import { createPrivateKey, createPublicKey, randomUUID } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import {
  assertInvalidGrant, ed25519Signer, forgeRefreshToken, freshKeySigner, headerOf, hmacSigner, noSigner, nowSeconds,
  padded, publicKeyPem, rawJwt, standardBase64, trailingBitVariants, type ForgeChanges
} from '../fixtures.js'
import { bearer, build, claimsOf, login, refresh, registerAndLogin } from '../helper.js'
import { urlTrap } from './support.js'

// Hostile refresh tokens at POST /auth/refresh: RFC 8725, RFC 7515 §4.1 and §5.2, RFC 6749 §5.2.
// Every rejection is 400 `{error: "invalid_grant"}`. Each case forges from the live refresh token of
// a session (same jti, so a token that passed verification would rotate it), and afterwards the
// genuine token must still rotate: the 400 came from verification, not from a spent session.

const LEEWAY = 30
const IDLE_TTL = 3600

t.test('refresh token verification', async t => {
  const app = await build(t, { config: { REFRESH_IDLE_TTL: IDLE_TTL, REFRESH_REUSE_INTERVAL: 0 } })
  const user = await registerAndLogin(app)
  const secret = app.testKeys.refreshSecret
  const accessKey = app.testKeys.accessPrivateKey
  const hs256 = hmacSigner('sha256', secret)
  let live = user.tokens.refresh_token

  /** The session's genuine token rotates; the next case forges from its successor. */
  async function rotateLive (t: Test) {
    const res = await refresh(app, live)
    t.equal(res.statusCode, 200, 'the genuine token of the session still rotates')
    live = res.statusCode === 200 ? res.json().refresh_token : (await login(app, user.email, user.password)).refresh_token
  }
  /** Twice, since no cache may let the second one through; then the session is untouched. */
  async function rejected (t: Test, make: (template: string) => string) {
    const hostile = make(live)
    assertInvalidGrant(t, await refresh(app, hostile))
    assertInvalidGrant(t, await refresh(app, hostile))
    await rotateLive(t)
  }
  async function accepted (t: Test, make: (template: string) => string) {
    const res = await refresh(app, make(live))
    t.equal(res.statusCode, 200, 'accepted')
    if (res.statusCode === 200) live = res.json().refresh_token
  }
  const forged = (changes: ForgeChanges) => (template: string) => forgeRefreshToken(app, template, changes)
  /** Valid header and claims as JSON text, for edits no object can express. */
  const texts = (template: string) => ({
    header: JSON.stringify(headerOf(template)),
    claims: JSON.stringify(claimsOf(forgeRefreshToken(app, template)))
  })

  t.test('control: a token forged with the refresh secret rotates', t => accepted(t, forged({})))

  t.test('alg "none" in any casing, with and without a signature part', async t => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      t.test(`${alg}, empty signature`, t => rejected(t, forged({ header: { alg }, signer: noSigner })))
      t.test(`${alg}, no signature part at all`, t => rejected(t, template => forgeRefreshToken(app, template, { header: { alg }, signer: noSigner }).slice(0, -1)))
      t.test(`${alg}, with the HS256 signature of the real secret`, t => rejected(t, forged({ header: { alg } })))
    }
  })

  t.test('other algorithms and keys', async t => {
    const publicKey = createPublicKey(createPrivateKey(accessKey))
    const der = publicKey.export({ format: 'der', type: 'spki' })
    const cases: Array<[string, ForgeChanges]> = [
      ['HS384 with the refresh secret', { header: { alg: 'HS384' }, signer: hmacSigner('sha384', secret) }],
      ['HS512 with the refresh secret', { header: { alg: 'HS512' }, signer: hmacSigner('sha512', secret) }],
      ['EdDSA with the access key', { header: { alg: 'EdDSA' }, signer: ed25519Signer(accessKey) }],
      ['EdDSA with the access key and its kid', { header: { alg: 'EdDSA', kid: app.tollgate.jwks.keys[0]?.kid }, signer: ed25519Signer(accessKey) }],
      ['EdDSA with another Ed25519 key', { header: { alg: 'EdDSA' }, signer: freshKeySigner('EdDSA') }],
      ['RS256 with a fresh key', { header: { alg: 'RS256' }, signer: freshKeySigner('RS256') }],
      ['PS256 with a fresh key', { header: { alg: 'PS256' }, signer: freshKeySigner('PS256') }],
      ['ES256 with a fresh key', { header: { alg: 'ES256' }, signer: freshKeySigner('ES256') }],
      ['HS256 with the access public key PEM', { signer: hmacSigner('sha256', publicKeyPem(accessKey)) }],
      ['HS256 with the access public JWK as JSON text', { signer: hmacSigner('sha256', JSON.stringify(publicKey.export({ format: 'jwk' }))) }],
      ['HS256 with the access public key DER', { signer: hmacSigner('sha256', der) }],
      ['HS256 with the access public key DER in base64', { signer: hmacSigner('sha256', der.toString('base64')) }],
      ['HS256 with the access private key PEM', { signer: hmacSigner('sha256', accessKey) }],
      ['HS256 with the bytes the secret spells in base64url', { signer: hmacSigner('sha256', Buffer.from(secret, 'base64url')) }],
      ['HS256 with the issuer name', { signer: hmacSigner('sha256', app.tollgate.config.JWT_ISSUER) }]
    ]
    for (const [name, changes] of cases) t.test(name, t => rejected(t, forged(changes)))
  })

  t.test('header members beyond alg and typ are rejected even on a genuine signature', async t => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['an embedded jwk holding the secret', { jwk: { kty: 'oct', k: Buffer.from(secret).toString('base64url') } }],
      ['jku', { jku: 'https://evil.example/jwks.json' }],
      ['x5u', { x5u: 'https://evil.example/cert.pem' }],
      ['x5c', { x5c: ['MIIBszCCAVmgAwIBAgIUAAAA'] }],
      ['x5t', { x5t: 'dGh1bWJwcmludA' }],
      ['x5t#S256', { 'x5t#S256': 'dGh1bWJwcmludA' }],
      ['cty "JWT" (a nested JWT)', { cty: 'JWT' }],
      ['crit with an unknown extension', { crit: ['x-tollgate'], 'x-tollgate': true }],
      ['an unknown member', { foo: 'bar' }],
      ['the access kid', { kid: app.tollgate.jwks.keys[0]?.kid }],
      ['a path traversal kid', { kid: '../../../../etc/passwd' }],
      ['an SQL kid', { kid: "' OR '1'='1' --" }],
      ['a very long kid', { kid: 'k'.repeat(2000) }],
      ['a numeric kid', { kid: 7 }],
      ['an object kid', { kid: { $ne: null } }]
    ]
    for (const [name, extra] of cases) t.test(name, t => rejected(t, forged({ header: extra })))
    t.test('"__proto__" as a header member', t => rejected(t, template => rawJwt('{"alg":"HS256","typ":"rt+jwt","__proto__":{"x":1}}', texts(template).claims, hs256)))
    t.test('jku naming a listening server: rejected, and nothing fetches it', async t => {
      const fetched = await urlTrap(t)
      await rejected(t, forged({ header: { jku: `${fetched.base}/jwks.json`, x5u: `${fetched.base}/cert.pem` } }))
      t.same(fetched.requests, [], 'no request reached the server')
    })
    t.test('typ "at+jwt"', t => rejected(t, forged({ header: { typ: 'at+jwt' } })))
    t.test('no typ', t => rejected(t, forged({ header: { typ: undefined } })))
  })

  t.test('payloads that are not JSON objects are rejected even on a genuine signature', async t => {
    for (const payload of ['[]', '"a string"', '42', 'null', 'false']) {
      t.test(`payload ${payload}`, t => rejected(t, template => rawJwt(texts(template).header, payload, hs256)))
    }
  })

  t.test('duplicate member names are rejected even on a genuine signature (RFC 7515 §5.2)', async t => {
    const inner = (json: string) => json.slice(1, -1)
    const cases: Array<[string, (template: string) => [string, string]]> = [
      ['two sub members', template => { const { header, claims } = texts(template); return [header, `{"sub":"${randomUUID()}",${inner(claims)}}`] }],
      ['two jti members', template => { const { header, claims } = texts(template); return [header, `{"jti":"${randomUUID()}",${inner(claims)}}`] }],
      ['two sid members', template => { const { header, claims } = texts(template); return [header, `{"sid":"${randomUUID()}",${inner(claims)}}`] }],
      ['two exp members', template => { const { header, claims } = texts(template); return [header, `{"exp":1,${inner(claims)}}`] }],
      ['a duplicate spelled with a \\u escape', template => { const { header, claims } = texts(template); return [header, `{"j\\u0074i":"${randomUUID()}",${inner(claims)}}`] }],
      ['two alg members', template => ['{"alg":"none","typ":"rt+jwt","alg":"HS256"}', texts(template).claims]],
      ['two typ members', template => ['{"typ":"at+jwt","alg":"HS256","typ":"rt+jwt"}', texts(template).claims]]
    ]
    for (const [name, make] of cases) t.test(name, t => rejected(t, template => rawJwt(...make(template), hs256)))
    t.test('control: odd but valid spacing and escapes are accepted', t => accepted(t, template => rawJwt(
      '{ "alg" : "HS256",\n "typ":"rt+jwt" }', JSON.stringify({ ...claimsOf(forgeRefreshToken(app, template)), note: 'a:"b",\\' }), hs256)))
  })

  t.test('missing claims are rejected', async t => {
    for (const claim of ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid']) {
      t.test(`no ${claim}`, t => rejected(t, forged({ claims: { [claim]: undefined } })))
    }
  })

  t.test('dates: types, leeway, and bounds', async t => {
    // Each token's times are taken when it is forged, so a slow run cannot move a boundary.
    const cases: Array<[string, (now: number) => Record<string, unknown>]> = [
      ['exp a string', now => ({ exp: String(now + 300) })],
      ['nbf a string', now => ({ nbf: String(now) })],
      ['iat a string', now => ({ iat: String(now) })],
      ['nbf beyond the leeway', now => ({ nbf: now + LEEWAY + 30 })],
      ['iat beyond the leeway', now => ({ iat: now + LEEWAY + 30, exp: now + LEEWAY + 30 + 60 })],
      ['exp just past the leeway', now => ({ iat: now - 600, exp: now - LEEWAY - 10 })],
      ['exp - iat one second above the idle timeout', now => ({ iat: now, exp: now + IDLE_TTL + 1 })],
      ['exp far in the future', now => ({ exp: now + 10 * 365 * 86400 })]
    ]
    for (const [name, claims] of cases) t.test(name, t => rejected(t, template => forgeRefreshToken(app, template, { claims: claims(nowSeconds()) })))
    t.test('exp = 1e400 (parsed as Infinity)', t => rejected(t, template => rawJwt(texts(template).header, texts(template).claims.replace(/"exp":\d+/, '"exp":1e400'), hs256)))

    const controls: Array<[string, (now: number) => Record<string, unknown>]> = [
      ['nbf within the leeway', now => ({ nbf: now + LEEWAY - 20 })],
      ['iat within the leeway', now => ({ iat: now + LEEWAY - 20, exp: now + LEEWAY - 20 + 600 })],
      ['exp just within the leeway', now => ({ iat: now - 600, exp: now - LEEWAY + 20 })],
      ['exp - iat exactly the idle timeout', now => ({ iat: now, exp: now + IDLE_TTL })]
    ]
    for (const [name, claims] of controls) t.test(`control: ${name}`, t => accepted(t, template => forgeRefreshToken(app, template, { claims: claims(nowSeconds()) })))
  })

  t.test('ids must be UUID strings', async t => {
    const values: Array<[string, unknown]> = [['not a UUID', 'not-a-uuid'], ['a number', 42], ['an object', { $ne: null }], ['an array', [randomUUID()]], ['empty', '']]
    for (const claim of ['sub', 'jti', 'sid']) {
      for (const [name, value] of values) t.test(`${claim} ${name}`, t => rejected(t, forged({ claims: { [claim]: value } })))
    }
  })

  t.test('iss and aud must match exactly', async t => {
    const iss = app.tollgate.config.JWT_ISSUER
    const aud = `${iss}#refresh`
    const cases: Array<[string, Record<string, unknown>]> = [
      ['iss a prefix of ours', { iss: iss.slice(0, -1) }],
      ['iss with a suffix', { iss: `${iss}x` }],
      ['iss in another case', { iss: iss.toUpperCase() }],
      ['aud the access audience', { aud: app.tollgate.config.JWT_AUDIENCE }],
      ['aud a prefix of ours', { aud: aud.slice(0, -1) }],
      ['aud with a suffix', { aud: `${aud}x` }],
      ['aud in another case', { aud: aud.toUpperCase() }],
      ['aud an array without ours', { aud: [app.tollgate.config.JWT_AUDIENCE, 'another'] }]
    ]
    for (const [name, claims] of cases) t.test(name, t => rejected(t, forged({ claims })))
  })
})

t.test('a spent refresh token stays spent in every spelling', async t => {
  const app = await build(t, { config: { REFRESH_REUSE_INTERVAL: 0 } })
  const user = await registerAndLogin(app)
  const variantsOf = (token: string): Array<[string, string]> => {
    const [h, p, s] = token.split('.') as [string, string, string]
    return [
      ...trailingBitVariants(s).map((v, i): [string, string] => [`signature trailing bits, variant ${i + 1}`, `${h}.${p}.${v}`]),
      ['signature with = padding', `${h}.${p}.${padded(s)}`],
      ['payload with = padding', `${h}.${padded(p)}.${s}`],
      ['standard base64 alphabet', standardBase64(token)]
    ]
  }
  /** A live refresh token with a `-` or `_`, so its standard-base64 spelling differs. */
  async function liveToken () {
    for (;;) {
      const pair = await login(app, user.email, user.password)
      if (/[-_]/.test(pair.refresh_token)) return pair
    }
  }

  t.test('a live token: other spellings are rejected and spend nothing', async t => {
    const pair = await liveToken()
    const variants = variantsOf(pair.refresh_token)
    t.equal(variants.length, 3 + 3, 'an HS256 signature (43 characters) has 3 non-canonical spellings')
    for (const [name, variant] of variants) {
      t.same(Buffer.from(variant.split('.')[2] as string, 'base64'), Buffer.from(pair.refresh_token.split('.')[2] as string, 'base64url'), `${name}: same signature bytes`)
      assertInvalidGrant(t, await refresh(app, variant))
    }
    t.equal((await refresh(app, pair.refresh_token)).statusCode, 200, 'the canonical token still rotates')
  })

  t.test('after rotation', async t => {
    const pair = await liveToken()
    const next = await refresh(app, pair.refresh_token)
    t.equal(next.statusCode, 200)
    for (const [name, variant] of variantsOf(pair.refresh_token)) {
      t.test(name, async t => assertInvalidGrant(t, await refresh(app, variant)))
    }
  })

  t.test('after logout', async t => {
    const pair = await liveToken()
    const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(pair.access_token) })
    t.equal(logout.statusCode, 204)
    assertInvalidGrant(t, await refresh(app, pair.refresh_token))
    for (const [name, variant] of variantsOf(pair.refresh_token)) {
      t.test(name, async t => assertInvalidGrant(t, await refresh(app, variant)))
    }
  })
})

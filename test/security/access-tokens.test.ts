import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import {
  assertRejectedAccessToken, ed25519Signer, forgeAccessToken, freshKeySigner, headerOf, hmacSigner, noSigner,
  nowSeconds, padded, publicKeyPem, rawJwt, standardBase64, trailingBitVariants, type Signer
} from '../fixtures.js'
import { bearer, build, claimsOf, login, registerAndLogin } from '../helper.js'
import { urlTrap } from './support.js'

// Hostile access tokens beyond the 31 cases of test/routes/users.test.ts (which this file does not
// repeat): RFC 8725 §3.1–3.11, RFC 9068 §4, RFC 7515 §4.1 and §5.2, RFC 6750 §3. Every rejection is the
// one 401 with `WWW-Authenticate: Bearer realm="tollgate", error="invalid_token"`.

const TTL = 600
const LEEWAY = 30

t.test('access token verification', async t => {
  const app = await build(t, { config: { ACCESS_TOKEN_TTL: TTL } })
  const { tokens } = await registerAndLogin(app)
  const real = tokens.access_token
  const privateKey = app.testKeys.accessPrivateKey
  const realKey = ed25519Signer(privateKey)
  const header = headerOf(real)

  const get = (url: string, token: string) => app.inject({ method: 'GET', url, headers: bearer(token) })
  /**
   * Rejected at two protected routes; /users/me twice, because the second call is a hit in fast-jwt's
   * verified-token cache for every token whose signature verifies: the checks must hold on hits too.
   */
  async function rejected (t: Test, token: string) {
    for (const url of ['/users/me', '/users/me', '/auth/sessions']) assertRejectedAccessToken(t, await get(url, token))
  }
  async function accepted (t: Test, token: string) {
    for (const url of ['/users/me', '/users/me']) t.equal((await get(url, token)).statusCode, 200, `accepted at ${url}`)
  }
  /** The JSON text of valid claims (a fresh jti and iat), to edit as text. */
  const claimsJson = () => JSON.stringify(claimsOf(forgeAccessToken(app, real)))
  const headerJson = JSON.stringify(header)

  t.test('control: a token forged with the app key is accepted at both routes, twice', async t => {
    await accepted(t, forgeAccessToken(app, real))
    t.equal((await get('/auth/sessions', forgeAccessToken(app, real))).statusCode, 200)
  })

  t.test('alg "none" in any casing, with and without a signature part, is rejected', async t => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const unsigned = forgeAccessToken(app, real, { header: { alg }, signer: noSigner })
      // "none" with an empty signature is in users.test.ts.
      if (alg !== 'none') t.test(`${alg}, empty signature`, t => rejected(t, unsigned))
      t.test(`${alg}, no signature part at all`, t => rejected(t, unsigned.slice(0, -1)))
      t.test(`${alg}, with the signature of the real key`, t => rejected(t, forgeAccessToken(app, real, { header: { alg } })))
      t.test(`${alg}, with a garbage signature`, t => rejected(t, forgeAccessToken(app, real, { header: { alg }, signer: () => Buffer.from('x') })))
    }
  })

  t.test('HMAC keyed with anything the server knows is rejected (RFC 8725 §3.1, key confusion)', async t => {
    const publicKey = createPublicKey(createPrivateKey(privateKey))
    const jwks = (await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as { keys: unknown[] }
    const der = publicKey.export({ format: 'der', type: 'spki' })
    const keys: Array<[string, string | Buffer]> = [
      ['the refresh secret', app.testKeys.refreshSecret],
      ['the access public key PEM', publicKeyPem(privateKey)],
      ['the published JWK as JSON text', JSON.stringify(jwks.keys[0])],
      ['the bare public JWK as JSON text', JSON.stringify(publicKey.export({ format: 'jwk' }))],
      ['the public key DER (spki) bytes', der],
      ['the public key DER in base64', der.toString('base64')],
      ['the raw 32-byte public key', Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url')],
      ['the kid', header.kid as string]
    ]
    // users.test.ts has HS256 with the PEM; every other pair is here.
    for (const [name, key] of keys) {
      for (const [alg, hash] of [['HS256', 'sha256'], ['HS384', 'sha384'], ['HS512', 'sha512']] as const) {
        if (alg === 'HS256' && name === 'the access public key PEM') continue
        t.test(`${alg} keyed with ${name}`, t => rejected(t, forgeAccessToken(app, real, { header: { alg }, signer: hmacSigner(hash, key) })))
      }
    }
  })

  t.test('other asymmetric algorithms with fresh keys are rejected (algorithm substitution)', async t => {
    // EdDSA with another Ed25519 key is in users.test.ts.
    for (const alg of ['RS256', 'PS256', 'ES256'] as const) {
      t.test(alg, t => rejected(t, forgeAccessToken(app, real, { header: { alg }, signer: freshKeySigner(alg) })))
    }
    t.test('EdDSA header, RS256 signature', t => rejected(t, forgeAccessToken(app, real, { signer: freshKeySigner('RS256') })))
  })

  t.test('header members beyond alg, typ and kid are rejected even on a genuine signature', async t => {
    const realJwk = createPublicKey(createPrivateKey(privateKey)).export({ format: 'jwk' })
    const cases: Array<[string, Record<string, unknown>]> = [
      ['an embedded jwk (the real public key)', { jwk: realJwk }],
      ['an embedded jwk (another key)', { jwk: freshPublicJwk() }],
      ['jku', { jku: 'https://evil.example/jwks.json' }],
      ['jku pointing at this server', { jku: 'http://localhost/.well-known/jwks.json' }],
      ['x5u', { x5u: 'https://evil.example/cert.pem' }],
      ['x5c', { x5c: ['MIIBszCCAVmgAwIBAgIUAAAA'] }],
      ['x5t', { x5t: 'dGh1bWJwcmludA' }],
      ['x5t#S256', { 'x5t#S256': 'dGh1bWJwcmludA' }],
      ['cty "JWT" (a nested JWT)', { cty: 'JWT' }],
      ['cty "jwt"', { cty: 'jwt' }],
      ['crit with an unknown extension', { crit: ['x-tollgate'], 'x-tollgate': true }],
      ['crit "b64" with b64 false (RFC 7797)', { crit: ['b64'], b64: false }],
      ['crit empty', { crit: [] }],
      ['b64 false without crit', { b64: false }],
      ['zip', { zip: 'DEF' }],
      ['an unknown member', { foo: 'bar' }],
      ['an unknown member with a null value', { foo: null }],
      ['enc (a JWE header)', { enc: 'A256GCM' }],
      ['nonce', { nonce: 'n' }]
    ]
    for (const [name, extra] of cases) {
      t.test(name, t => rejected(t, forgeAccessToken(app, real, { header: extra })))
    }
    t.test('"__proto__" as a header member', t => rejected(t, rawJwt(
      `{"alg":"EdDSA","typ":"at+jwt","kid":${JSON.stringify(header.kid)},"__proto__":{"alg":"none"}}`, claimsJson(), realKey)))
    t.test('no kid at all', t => rejected(t, forgeAccessToken(app, real, { header: { kid: undefined } })))
    t.test('jku and x5u naming a listening server: rejected, and nothing fetches them', async t => {
      const fetched = await urlTrap(t)
      await rejected(t, forgeAccessToken(app, real, { header: { jku: `${fetched.base}/jwks.json` } }))
      await rejected(t, forgeAccessToken(app, real, { header: { x5u: `${fetched.base}/cert.pem` } }))
      t.same(fetched.requests, [], 'no request reached the server')
    })
  })

  t.test('unknown or hostile kid values are rejected', async t => {
    const kids: Array<[string, unknown]> = [
      ['path traversal', '../../../../etc/passwd'],
      ['path traversal to /dev/null', '../../../../../../dev/null'],
      ['URL-encoded traversal', '..%2F..%2Fkeys%2Faccess-ed25519.pem'],
      ['SQL', "' OR '1'='1' --"],
      ['SQL union', `${header.kid as string}' UNION SELECT 'x`],
      ['very long', 'k'.repeat(4000)],
      ['empty', ''],
      ['the real kid with a trailing space', `${header.kid as string} `],
      ['the real kid in upper case', (header.kid as string).toUpperCase()],
      ['a NUL byte after the real kid', `${header.kid as string}\u0000`],
      ['a number', 1],
      ['null', null],
      ['true', true],
      ['an object', { $ne: null }],
      ['an array holding the real kid', [header.kid]]
    ]
    for (const [name, kid] of kids) t.test(name, t => rejected(t, forgeAccessToken(app, real, { header: { kid } })))
  })

  t.test('payloads that are not JSON objects are rejected even on a genuine signature', async t => {
    for (const payload of ['[]', `[${claimsJson()}]`, '"a string"', '42', 'null', 'true', '']) {
      t.test(`payload ${JSON.stringify(payload.slice(0, 20))}`, t => rejected(t, rawJwt(headerJson, payload, realKey)))
    }
  })

  t.test('duplicate member names are rejected even on a genuine signature (RFC 7515 §5.2)', async t => {
    const claims = claimsOf(forgeAccessToken(app, real))
    const otherUser = randomUUID()
    const kid = JSON.stringify(header.kid)
    const body = (text: string) => text.slice(1, -1)
    const cases: Array<[string, string, string]> = [
      ['two sub members (another user first)', headerJson, `{"sub":"${otherUser}",${body(JSON.stringify(claims))}}`],
      ['two sub members with the same value', headerJson, `{${body(JSON.stringify(claims))},"sub":"${claims.sub as string}"}`],
      ['two exp members', headerJson, `{"exp":1,${body(JSON.stringify(claims))}}`],
      ['two aud members', headerJson, `{"aud":"another-api",${body(JSON.stringify(claims))}}`],
      ['two roles members', headerJson, `{"roles":["admin"],${body(JSON.stringify(claims))}}`],
      ['a duplicate spelled with a \\u escape', headerJson, `{"s\\u0075b":"${otherUser}",${body(JSON.stringify(claims))}}`],
      ['a duplicate inside a nested object', headerJson, JSON.stringify({ ...claims, ext: { a: 1 } }).replace('"a":1', '"a":1,"a":2')],
      ['two alg members ("none" first)', `{"alg":"none","typ":"at+jwt","kid":${kid},"alg":"EdDSA"}`, JSON.stringify(claims)],
      ['two typ members', `{"typ":"JWT","alg":"EdDSA","typ":"at+jwt","kid":${kid}}`, JSON.stringify(claims)],
      ['two kid members', `{"kid":"../../etc/passwd","alg":"EdDSA","typ":"at+jwt","kid":${kid}}`, JSON.stringify(claims)]
    ]
    for (const [name, headerText, payloadText] of cases) {
      t.test(name, t => rejected(t, rawJwt(headerText, payloadText, realKey)))
    }
    t.test('control: the same texts without the duplicate, with odd but valid spacing and escapes, are accepted', async t => {
      const spaced = `{ "alg" : "EdDSA" , "typ":"at+jwt","kid" : ${kid} }`
      await accepted(t, rawJwt(spaced, JSON.stringify({ ...claims, jti: randomUUID(), note: 'a:"b",c\\' }), realKey))
    })
  })

  t.test('missing claims are rejected', async t => {
    // exp, jti and sub are in users.test.ts.
    for (const claim of ['iss', 'aud', 'iat', 'client_id', 'sid', 'roles']) {
      t.test(`no ${claim}`, t => rejected(t, forgeAccessToken(app, real, { claims: { [claim]: undefined } })))
    }
  })

  t.test('dates: types, leeway, and bounds', async t => {
    // Each token's times are taken when it is forged, so a slow run cannot move a boundary.
    const rejectedCases: Array<[string, (now: number) => Record<string, unknown>]> = [
      // iat as a string is in users.test.ts.
      ['exp a string', now => ({ exp: String(now + 300) })],
      ['nbf a string', now => ({ nbf: String(now) })],
      ['exp an array', now => ({ exp: [now + 300] })],
      ['nbf beyond the leeway', now => ({ nbf: now + LEEWAY + 30 })],
      ['iat just beyond the leeway', now => ({ iat: now + LEEWAY + 30, exp: now + LEEWAY + 30 + 60 })],
      ['exp just past the leeway', now => ({ iat: now - TTL + 1, exp: now - LEEWAY - 10 })],
      ['exp - iat one second above the lifetime', now => ({ iat: now, exp: now + TTL + 1 })],
      ['iat null', () => ({ iat: null })],
      ['exp null', () => ({ exp: null })]
    ]
    for (const [name, claims] of rejectedCases) t.test(name, t => rejected(t, forgeAccessToken(app, real, { claims: claims(nowSeconds()) })))
    t.test('iat of -1e400 (parsed as -Infinity)', t => rejected(t, rawJwt(headerJson, claimsJson().replace(/"iat":\d+/, '"iat":-1e400'), realKey)))
    t.test('iat of 1e400 (parsed as Infinity)', t => rejected(t, rawJwt(headerJson, claimsJson().replace(/"iat":\d+/, '"iat":1e400'), realKey)))

    const acceptedCases: Array<[string, (now: number) => Record<string, unknown>]> = [
      ['nbf within the leeway', now => ({ nbf: now + LEEWAY - 20 })],
      ['iat within the leeway', now => ({ iat: now + LEEWAY - 20, exp: now + LEEWAY - 20 + TTL })],
      ['exp just within the leeway', now => ({ iat: now - TTL + 1, exp: now - LEEWAY + 20 })],
      ['exp - iat exactly the lifetime', now => ({ iat: now, exp: now + TTL })]
    ]
    for (const [name, claims] of acceptedCases) t.test(`control: ${name}`, t => accepted(t, forgeAccessToken(app, real, { claims: claims(nowSeconds()) })))
  })

  t.test('ids must be UUID strings', async t => {
    // sub is in users.test.ts.
    const values: Array<[string, unknown]> = [
      ['not a UUID', 'not-a-uuid'], ['a UUID in braces', `{${randomUUID()}}`], ['a UUID with a suffix', `${randomUUID()}x`],
      ['a number', 42], ['null', null], ['an object', { $ne: null }], ['an array of a UUID', [randomUUID()]], ['empty', '']
    ]
    for (const claim of ['jti', 'sid']) {
      for (const [name, value] of values) t.test(`${claim} ${name}`, t => rejected(t, forgeAccessToken(app, real, { claims: { [claim]: value } })))
    }
  })

  t.test('iss and aud must match exactly', async t => {
    const iss = app.tollgate.config.JWT_ISSUER
    const aud = app.tollgate.config.JWT_AUDIENCE
    const cases: Array<[string, Record<string, unknown>]> = [
      ['iss a prefix of ours', { iss: iss.slice(0, -1) }],
      ['iss with a suffix', { iss: `${iss}x` }],
      ['iss ours with a path', { iss: `${iss}/evil` }],
      ['iss in another case', { iss: iss.toUpperCase() }],
      ['iss with a leading space', { iss: ` ${iss}` }],
      ['iss an array holding ours', { iss: [iss] }],
      ['iss empty', { iss: '' }],
      ['aud a prefix of ours', { aud: aud.slice(0, -1) }],
      ['aud with a suffix', { aud: `${aud}x` }],
      ['aud in another case', { aud: aud.toUpperCase() }],
      ['aud the refresh audience', { aud: `${iss}#refresh` }],
      ['aud an array without ours', { aud: ['another-api', `${aud}x`] }],
      ['aud an empty array', { aud: [] }],
      ['aud an array holding a non-string', { aud: [aud, 1] }]
    ]
    for (const [name, claims] of cases) t.test(name, t => rejected(t, forgeAccessToken(app, real, { claims })))
  })
})

t.test('revocation cannot be bypassed by another encoding of the same token', async t => {
  const app = await build(t)
  const user = await registerAndLogin(app)
  // A token whose text has a `-` or `_`, so that its standard-base64 spelling differs.
  let access = user.tokens.access_token
  while (!/[-_]/.test(access)) access = (await login(app, user.email, user.password)).access_token
  const [h, p, s] = access.split('.') as [string, string, string]
  const variants: Array<[string, string]> = [
    ...trailingBitVariants(s).map((v, i): [string, string] => [`signature trailing bits, variant ${i + 1}`, `${h}.${p}.${v}`]),
    ['signature with = padding', `${h}.${p}.${padded(s)}`],
    ['payload with = padding', `${h}.${padded(p)}.${s}`],
    ['header with = padding', `${padded(h)}.${p}.${s}`],
    ['standard base64 alphabet', standardBase64(access)],
    ['standard base64 and padding', `${standardBase64(`${h}.${p}`)}.${padded(standardBase64(s))}`]
  ]
  t.ok(variants.length >= 15 + 5, 'Ed25519 signatures (86 characters) have 15 non-canonical spellings')
  for (const [name, variant] of variants) {
    const [vh, vp, vs] = variant.split('.') as [string, string, string]
    t.same(Buffer.from(vs, 'base64'), Buffer.from(s, 'base64url'), `${name}: the signature decodes to the same bytes`)
    t.same([Buffer.from(vh, 'base64'), Buffer.from(vp, 'base64')], [Buffer.from(h, 'base64url'), Buffer.from(p, 'base64url')], `${name}: so do header and payload`)
  }

  const me = (token: string) => app.inject({ method: 'GET', url: '/users/me', headers: bearer(token) })
  t.equal((await me(access)).statusCode, 200, 'control: the token works before logout')
  await t.test('a non-canonical spelling of a live token is rejected too (RFC 7515 §2, RFC 4648 §3.5)', async t => {
    for (const [name, variant] of variants) {
      await t.test(name, async t => {
        assertRejectedAccessToken(t, await me(variant))
        assertRejectedAccessToken(t, await me(variant))
      })
    }
  })
  t.equal((await me(access)).statusCode, 200, 'control: the canonical token still works (a fast-jwt cache hit)')

  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(access) })
  t.equal(logout.statusCode, 204)
  await t.test('after logout every spelling of the revoked token is 401', async t => {
    assertRejectedAccessToken(t, await me(access))
    for (const [name, variant] of variants) await t.test(name, async t => assertRejectedAccessToken(t, await me(variant)))
  })
})

t.test('the checks hold for the token service itself, on fast-jwt cache hits', async t => {
  const app = await build(t)
  const { tokens } = await registerAndLogin(app)
  const real = tokens.access_token
  const hostile: Array<[string, string]> = [
    ['an extra header member', forgeAccessToken(app, real, { header: { jku: 'https://evil.example/jwks.json' } })],
    ['a duplicate sub', rawJwt(JSON.stringify(headerOf(real)), `{"sub":"${randomUUID()}",${JSON.stringify(claimsOf(forgeAccessToken(app, real))).slice(1)}`, ed25519Signer(app.testKeys.accessPrivateKey))],
    ['a non-canonical signature', (() => { const [h, p, s] = real.split('.') as [string, string, string]; return `${h}.${p}.${trailingBitVariants(s)[0] as string}` })()]
  ]
  for (const [name, token] of hostile) {
    for (let call = 1; call <= 3; call++) {
      t.throws(() => app.tollgate.tokens.verifyAccessToken(token), { code: 'INVALID_TOKEN', statusCode: 401 }, `${name}: call ${call} throws`)
    }
  }
  t.equal(app.tollgate.tokens.verifyAccessToken(real).sub, claimsOf(real).sub, 'control: the real token verifies')
})

t.test('an HS256 deployment: HMAC with the refresh secret and other hashes are rejected', async t => {
  const secret = 'an-hs256-access-secret-of-at-least-32-chars'
  const app = await build(t, { config: { ACCESS_TOKEN_ALG: 'HS256', ACCESS_TOKEN_SECRET: secret } })
  const { tokens } = await registerAndLogin(app)
  const real = tokens.access_token
  const me = (token: string) => app.inject({ method: 'GET', url: '/users/me', headers: bearer(token) })
  const hs256: Signer = hmacSigner('sha256', secret)
  t.equal((await me(forgeAccessToken(app, real, { signer: hs256 }))).statusCode, 200, 'control: HS256 with the secret')
  // HS512 and the refresh secret are in users.test.ts.
  assertRejectedAccessToken(t, await me(forgeAccessToken(app, real, { header: { alg: 'HS384' }, signer: hmacSigner('sha384', secret) })))
  assertRejectedAccessToken(t, await me(forgeAccessToken(app, real, { header: { jwk: { kty: 'oct', k: Buffer.from(secret).toString('base64url') } }, signer: hs256 })))
  assertRejectedAccessToken(t, await me(rawJwt(`{"alg":"none",${JSON.stringify(headerOf(real)).slice(1)}`, JSON.stringify(claimsOf(forgeAccessToken(app, real))), hs256)))
  const [h, p, s] = real.split('.') as [string, string, string]
  t.equal(s.length, 43, 'an HS256 signature has 43 characters, 2 spare bits')
  for (const variant of trailingBitVariants(s)) assertRejectedAccessToken(t, await me(`${h}.${p}.${variant}`))
})

function freshPublicJwk () {
  return generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' })
}

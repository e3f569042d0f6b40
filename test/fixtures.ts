import { constants, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto'
import { createServer } from 'node:net'
import type { LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { claimsOf, type TestApp } from './helper.js'

// Test-only helpers beside helper.ts: forging JWTs and asserting the error shapes of the API contract.

export type Signer = (signingInput: Buffer) => Buffer

/** Signs like the app's Ed25519 access key (or any Ed25519 private key PEM). */
export const ed25519Signer = (privateKeyPem: string): Signer => input => sign(null, input, createPrivateKey(privateKeyPem))

/** HMAC with any key bytes, including ones a correct verifier must never accept (e.g. a public key PEM). */
export const hmacSigner = (hash: 'sha256' | 'sha384' | 'sha512', key: string | Buffer): Signer => input => createHmac(hash, key).update(input).digest()

/**
 * A signer for an asymmetric algorithm with a freshly generated key of the right type (algorithm
 * substitution: the signature is genuine, for a key the server has never seen).
 */
export function freshKeySigner (alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA'): Signer {
  if (alg === 'EdDSA') {
    const { privateKey } = generateKeyPairSync('ed25519')
    return input => sign(null, input, privateKey)
  }
  if (alg === 'ES256') {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    // JWS (RFC 7518 §3.4) carries R || S, not DER.
    return input => sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' })
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  if (alg === 'PS256') {
    return input => sign('sha256', input, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
  }
  return input => sign('sha256', input, privateKey)
}

/** `alg: none`: an empty signature. */
export const noSigner: Signer = () => Buffer.alloc(0)

const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A compact JWS built by hand, so a test controls every byte of header, payload and signature. */
export function jwt (header: Record<string, unknown>, payload: Record<string, unknown> | string, signer: Signer): string {
  const payloadSegment = typeof payload === 'string' ? Buffer.from(payload).toString('base64url') : segment(payload)
  const input = `${segment(header)}.${payloadSegment}`
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`
}

/**
 * A compact JWS from the exact JSON texts of header and payload (duplicate members, odd spacing, a
 * payload that is not an object), signed over exactly those bytes.
 */
export function rawJwt (headerJson: string, payloadJson: string, signer: Signer): string {
  const input = `${Buffer.from(headerJson).toString('base64url')}.${Buffer.from(payloadJson).toString('base64url')}`
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`
}

/** Decodes a JWT's header without verifying it (assertions only). */
export function headerOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString())
}

export function publicKeyPem (privateKeyPem: string): string {
  return createPublicKey(createPrivateKey(privateKeyPem)).export({ format: 'pem', type: 'spki' }).toString()
}

export const nowSeconds = () => Math.floor(Date.now() / 1000)

export interface ForgeChanges {
  header?: Record<string, unknown>
  /** Claims over those of the template; an undefined value removes the claim. */
  claims?: Record<string, unknown>
  signer?: Signer
}

/**
 * A new access token made from a real one (same header, sub and sid, a fresh jti, a fresh iat and
 * the same lifetime), with `changes` applied and signed with the app's own Ed25519 key unless told otherwise.
 * Without changes the result is a valid token: each test changes exactly one thing.
 */
export function forgeAccessToken (app: TestApp, template: string, changes: ForgeChanges = {}): string {
  return forge(template, { jti: randomUUID() }, changes, ed25519Signer(app.testKeys.accessPrivateKey))
}

/**
 * A new refresh token made from a real one: the same header, sub, sid and jti (so the session's
 * allowlist still knows it), a fresh iat and the same lifetime, with `changes` applied and signed
 * HS256 with the app's refresh secret unless told otherwise. Without changes it rotates like the template.
 */
export function forgeRefreshToken (app: TestApp, template: string, changes: ForgeChanges = {}): string {
  return forge(template, {}, changes, hmacSigner('sha256', app.testKeys.refreshSecret))
}

function forge (template: string, fresh: Record<string, unknown>, changes: ForgeChanges, defaultSigner: Signer): string {
  const original = claimsOf(template) as { iat: number, exp: number }
  const iat = nowSeconds()
  const claims: Record<string, unknown> = {
    ...original,
    ...fresh,
    iat,
    exp: iat + (original.exp - original.iat),
    ...changes.claims
  }
  for (const [key, value] of Object.entries(claims)) if (value === undefined) delete claims[key]
  const header = { ...headerOf(template), ...changes.header }
  for (const [key, value] of Object.entries(header)) if (value === undefined) delete header[key]
  return jwt(header, claims, changes.signer ?? defaultSigner)
}

export const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']
/** A 500, masked: no query, table or library message reaches a client. */
export const INTERNAL_ERROR_BODY = { statusCode: 500, code: 'INTERNAL_ERROR', error: 'Internal Server Error', message: 'Something went wrong' }
export const INVALID_TOKEN_BODY = {
  statusCode: 401,
  code: 'INVALID_TOKEN',
  error: 'Unauthorized',
  message: 'The access token is invalid, expired or revoked'
}
const LIBRARY_NAMES = /fast-jwt|FAST_JWT|FST_|@fastify|mikro-?orm|ioredis|argon2|"stack"/i

/** The body is exactly the Fastify error shape, with our own code, and names no library. */
export function assertErrorShape (t: Test, res: LightMyRequestResponse, statusCode: number) {
  t.equal(res.statusCode, statusCode, 'status')
  t.match(res.headers['content-type'], /^application\/json/, 'JSON body')
  const body = res.json()
  t.same(Object.keys(body).sort(), ERROR_KEYS, 'exactly {statusCode, code, error, message}')
  t.equal(body.statusCode, statusCode, 'statusCode in the body')
  t.type(body.code, 'string')
  t.notOk(String(body.code).startsWith('FST_'), 'no Fastify error code')
  t.notMatch(res.body, LIBRARY_NAMES, 'no library named')
}

/** RFC 6750 §3: 401, `WWW-Authenticate: Bearer … error="invalid_token"`, one generic body. */
export function assertInvalidToken (t: Test, res: LightMyRequestResponse) {
  assertErrorShape(t, res, 401)
  const challenge = res.headers['www-authenticate']
  t.type(challenge, 'string', 'WWW-Authenticate is sent')
  t.match(challenge, /^Bearer( |$)/, 'Bearer challenge')
  t.ok(String(challenge).includes('error="invalid_token"'), 'error="invalid_token"')
  t.same(res.json(), INVALID_TOKEN_BODY)
}

/** A TCP port nothing listens on (it was free a moment ago and nobody here binds it again). */
export async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>(resolve => server.close(() => resolve()))
  if (!address || typeof address === 'string') throw new Error('no port')
  return address.port
}

export const INVALID_TOKEN_CHALLENGE = 'Bearer realm="tollgate", error="invalid_token"'
export const INVALID_GRANT_BODY = { error: 'invalid_grant', error_description: 'The refresh token is invalid, expired or revoked' }
/** What no token rejection may show a client: a library, its error class or codes, a code path, a stack. */
export const NO_VERIFIER_DETAIL = /fast-jwt|FAST_JWT|FST_|TokenError|jwt|"stack"|\n\s+at |\.[cm]?[jt]s\b/i

/** RFC 6750 §3 exactly: 401, the one challenge with error="invalid_token", the one generic body. */
export function assertRejectedAccessToken (t: Test, res: LightMyRequestResponse) {
  assertInvalidToken(t, res)
  t.equal(res.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE, 'the exact challenge')
  t.notMatch(res.body, NO_VERIFIER_DETAIL, 'no verifier detail')
}

/** RFC 6749 §5.2: 400 `{error: "invalid_grant", error_description}`, not cached, nothing of the verifier. */
export function assertInvalidGrant (t: Test, res: LightMyRequestResponse) {
  t.equal(res.statusCode, 400, 'status')
  t.match(res.headers['content-type'], /^application\/json/, 'JSON body')
  t.same(res.json(), INVALID_GRANT_BODY, 'the one invalid_grant body')
  t.equal(res.headers['cache-control'], 'no-store')
  t.notMatch(res.body, NO_VERIFIER_DETAIL, 'no verifier detail')
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * The other spellings of a base64url segment that decode to the same bytes: its last character with
 * the unused low bits set otherwise (RFC 4648 §3.5 calls them non-canonical; lenient decoders ignore them).
 */
export function trailingBitVariants (segment: string): string[] {
  const spareBits = segment.length % 4 === 2 ? 4 : segment.length % 4 === 3 ? 2 : 0
  const last = BASE64URL_ALPHABET.indexOf(segment.slice(-1))
  const base = last & ~((1 << spareBits) - 1)
  const variants: string[] = []
  for (let bits = 0; bits < 1 << spareBits; bits++) {
    if ((base | bits) !== last) variants.push(segment.slice(0, -1) + BASE64URL_ALPHABET[base | bits])
  }
  return variants
}

/** The segment with the `=` padding of standard base64 added (at least one `=`). */
export const padded = (segment: string) => segment + '='.repeat(((4 - segment.length % 4) % 4) || 1)

/** The token in the standard base64 alphabet (`+` and `/` for `-` and `_`). */
export const standardBase64 = (token: string) => token.replaceAll('-', '+').replaceAll('_', '/')

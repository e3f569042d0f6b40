import { createHmac, createPrivateKey, createPublicKey, randomUUID, sign } from 'node:crypto'
import { createServer } from 'node:net'
import type { LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { claimsOf, type TestApp } from './helper.js'

// Test-only helpers beside helper.ts: forging JWTs and asserting the error shapes of the API contract.

export type Signer = (signingInput: Buffer) => Buffer

/** Signs like the app's Ed25519 access key (or any Ed25519 private key PEM). */
export const ed25519Signer = (privateKeyPem: string): Signer => input => sign(null, input, createPrivateKey(privateKeyPem))

/** HMAC with any key bytes, including ones a correct verifier must never accept (e.g. a public key PEM). */
export const hmacSigner = (hash: 'sha256' | 'sha512', key: string | Buffer): Signer => input => createHmac(hash, key).update(input).digest()

/** `alg: none`: an empty signature. */
export const noSigner: Signer = () => Buffer.alloc(0)

const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A compact JWS built by hand, so a test controls every byte of header, payload and signature. */
export function jwt (header: Record<string, unknown>, payload: Record<string, unknown> | string, signer: Signer): string {
  const payloadSegment = typeof payload === 'string' ? Buffer.from(payload).toString('base64url') : segment(payload)
  const input = `${segment(header)}.${payloadSegment}`
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
  const original = claimsOf(template) as { iat: number, exp: number }
  const iat = nowSeconds()
  const claims: Record<string, unknown> = {
    ...original,
    jti: randomUUID(),
    iat,
    exp: iat + (original.exp - original.iat),
    ...changes.claims
  }
  for (const [key, value] of Object.entries(claims)) if (value === undefined) delete claims[key]
  const header = { ...headerOf(template), ...changes.header }
  return jwt(header, claims, changes.signer ?? ed25519Signer(app.testKeys.accessPrivateKey))
}

export const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']
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

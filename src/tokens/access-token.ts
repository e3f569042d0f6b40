import { randomUUID } from 'node:crypto'
import { createSigner, createVerifier } from 'fast-jwt'
import { InvalidTokenError } from '../errors.js'
import { LEEWAY_SECONDS, hasCanonicalSignature, hasNoDuplicateClaims, hasOnlyHeaderMembers, hasSaneClaims } from './jwt-checks.js'

export const ACCESS_TOKEN_TYP = 'at+jwt'
// Claims fast-jwt must find before anything else is checked (RFC 9068 §2.2, RFC 8725 §3.9).
export const ACCESS_REQUIRED = ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'client_id', 'sid']
const ACCESS_HEADER_MEMBERS = 3 // alg, typ, kid
const DEFAULT_CACHE_SIZE = 10_000
// RFC 9068 client_id: tokens from the password grant are issued to Tollgate's own first-party client.
export const FIRST_PARTY_CLIENT_ID = 'tollgate'

export interface AccessClaims {
  iss: string
  aud: string | string[]
  sub: string
  client_id: string
  iat: number
  exp: number
  jti: string
  sid: string
  roles: string[]
}

/** A key that verifies access tokens, chosen by the `kid` in their header. */
export type VerificationKey =
  | { alg: 'EdDSA', kid: string, publicKey: string }
  | { alg: 'HS256', kid: string, secret: string }

export interface AccessTokenVerifierOptions {
  issuer: string
  audience: string
  /** Every key whose tokens are still accepted: the signing key and, during a rotation, earlier ones. */
  keys: VerificationKey[]
  /** The longest lifetime the issuer gives an access token, seconds. */
  maxLifetime: number
  /** Verified tokens remembered, so a repeated token costs no signature check. */
  cacheSize?: number
}

export type VerifyAccessToken = (token: string) => AccessClaims

/** The key that signs access tokens: an Ed25519 private key (PEM) or an HS256 secret. */
export type SigningKey =
  | { alg: 'EdDSA', kid: string, privateKey: string }
  | { alg: 'HS256', kid: string, secret: string }

export interface AccessTokenSignerOptions {
  issuer: string
  audience: string
  key: SigningKey
  /** Lifetime, seconds. */
  ttl: number
}

/** Signs access tokens (RFC 9068): header `typ: at+jwt` and `kid`, a fresh jti each. */
export function createAccessTokenSigner ({ issuer, audience, key, ttl }: AccessTokenSignerOptions) {
  const sign = createSigner({
    algorithm: key.alg,
    key: key.alg === 'EdDSA' ? key.privateKey : key.secret,
    kid: key.kid,
    header: { alg: key.alg, typ: ACCESS_TOKEN_TYP },
    iss: issuer,
    aud: audience,
    expiresIn: ttl * 1000 // milliseconds in fast-jwt
  })
  return function signAccessToken (input: { userId: string, sid: string, roles: string[] }) {
    const jti = randomUUID()
    const token = sign({ sub: input.userId, client_id: FIRST_PARTY_CLIENT_ID, jti, sid: input.sid, roles: input.roles })
    return { token, jti, expiresIn: ttl }
  }
}

/**
 * Verifies access tokens with fast-jwt, one verifier per key with its algorithm pinned (RFC 8725),
 * plus the checks fast-jwt leaves to us. Throws InvalidTokenError, whatever the reason.
 * Shared by the Tollgate server and by apps that only verify (tollgate/verify).
 */
export function createAccessTokenVerifier (options: AccessTokenVerifierOptions): VerifyAccessToken {
  const { issuer, audience, maxLifetime, cacheSize = DEFAULT_CACHE_SIZE } = options
  if (options.keys.length === 0) throw new Error('access token verifier: no verification keys')
  const verifiers = new Map<string, (token: string) => AccessClaims>()
  for (const key of options.keys) {
    if (verifiers.has(key.kid)) throw new Error(`access token verifier: two keys share the kid ${key.kid}`)
    verifiers.set(key.kid, createVerifier({
      key: key.alg === 'EdDSA' ? key.publicKey : key.secret,
      algorithms: [key.alg],
      checkTyp: ACCESS_TOKEN_TYP,
      allowedIss: issuer,
      allowedAud: audience,
      requiredClaims: ACCESS_REQUIRED,
      clockTolerance: LEEWAY_SECONDS * 1000 // milliseconds in fast-jwt
    }) as (token: string) => AccessClaims)
  }

  function verifyUncached (token: string): AccessClaims | null {
    if (!hasCanonicalSignature(token)) return null
    const header = parseHeader(token)
    const verify = typeof header?.kid === 'string' ? verifiers.get(header.kid) : undefined
    if (!verify || !hasOnlyHeaderMembers(token, header, ACCESS_HEADER_MEMBERS)) return null
    const claims = verify(token)
    if (!hasSaneClaims(claims, maxLifetime) || typeof claims.client_id !== 'string' ||
      !Array.isArray(claims.roles) || !hasNoDuplicateClaims(token, claims)) return null
    return claims
  }

  // Keyed by the token text itself: every check above depends only on that text, except time, and
  // expiry is checked again on each hit (iat can only get further from the future). Hashing the
  // token for the key, as fast-jwt's own cache does, cost 6 % of an authenticated request.
  const cache = new Map<string, AccessClaims>()
  const leewayMs = LEEWAY_SECONDS * 1000

  return function verifyAccessToken (token: string): AccessClaims {
    const hit = cache.get(token)
    if (hit !== undefined) {
      if (Date.now() <= hit.exp * 1000 + leewayMs) return hit
      cache.delete(token)
    }
    let claims: AccessClaims | null
    try {
      claims = verifyUncached(token)
    } catch {
      claims = null
    }
    if (claims === null) throw new InvalidTokenError()
    if (cacheSize <= 0) return claims
    // Oldest first out: a bound, not an LRU; a token evicted while in use is only verified again.
    if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string)
    // Frozen, since every request with this token gets the same object.
    Object.freeze(claims.roles)
    cache.set(token, Object.freeze(claims))
    return claims
  }
}

/** The JOSE header of a compact JWT, unverified; null if it is not a JSON object. */
export function parseHeader (token: string): Record<string, unknown> | null {
  try {
    const header: unknown = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8'))
    return typeof header === 'object' && header !== null && !Array.isArray(header) ? header as Record<string, unknown> : null
  } catch {
    return null
  }
}

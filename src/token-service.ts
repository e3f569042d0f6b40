import { randomUUID } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
import type { Config } from './config.js'
import { InvalidTokenError, invalidGrant } from './errors.js'
import type { TokenResponse } from './schemas.js'

export const ACCESS_TOKEN_TYP = 'at+jwt'
export const REFRESH_TOKEN_TYP = 'rt+jwt'
// RFC 9068 client_id: tokens from the password grant are issued to Tollgate's own first-party client.
export const FIRST_PARTY_CLIENT_ID = 'tollgate'
export const LEEWAY_SECONDS = 30

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// The signature segment in canonical base64url (RFC 7515 §2): its alphabet only, no padding.
const SIGNATURE_SEGMENT = /^[A-Za-z0-9_-]+$/
// The 6-bit value of each base64url character, to check the unused bits of the last one.
const BASE64URL_VALUE = new Int8Array(128)
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) BASE64URL_VALUE[c.charCodeAt(0)] = i
// The header members each token type may carry, and nothing else (RFC 8725 §3.11, RFC 7515 §4.1):
// jwk, jku, x5u, x5c, x5t, cty, crit, b64, zip… are refused, never fetched or used.
const ACCESS_HEADER_MEMBERS = 3 // alg, typ, kid
const REFRESH_HEADER_MEMBERS = 2 // alg, typ
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COLON = 0x3a

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

export interface RefreshClaims {
  iss: string
  aud: string
  sub: string
  iat: number
  exp: number
  jti: string
  sid: string
}

interface CompleteToken<T> { header: Record<string, unknown>, payload: T }

export interface TokenServiceDeps {
  config: Pick<Config, 'JWT_ISSUER' | 'JWT_AUDIENCE' | 'ACCESS_TOKEN_TTL' | 'REFRESH_IDLE_TTL'>
  accessJwt: JWT
  refreshJwt: JWT
  accessKid: string
}

/** Signs and verifies Tollgate's two token types; knows nothing of HTTP or storage. */
export function createTokenService ({ config, accessJwt, refreshJwt, accessKid }: TokenServiceDeps) {
  function issueAccessToken (input: { userId: string, sid: string, roles: string[] }) {
    const jti = randomUUID()
    const token = accessJwt.sign({ sub: input.userId, client_id: FIRST_PARTY_CLIENT_ID, jti, sid: input.sid, roles: input.roles })
    return { token, jti, expiresIn: config.ACCESS_TOKEN_TTL }
  }

  /** The token lives for the idle timeout, cut off at the session's absolute expiry (unix seconds). */
  function issueRefreshToken (input: { userId: string, sid: string, jti: string, sessionExpiresAt: number, now: number }) {
    const expiresIn = Math.max(1, Math.min(config.REFRESH_IDLE_TTL, input.sessionExpiresAt - input.now))
    const token = refreshJwt.sign({ sub: input.userId, jti: input.jti, sid: input.sid }, { expiresIn })
    return { token, expiresIn }
  }

  // The header segment our own signers write (fixed per key), found once at boot: a token that
  // carries exactly it needs no header checks of its own.
  const ownAccessHeader = ownHeaderSegment(accessJwt)
  const ownRefreshHeader = ownHeaderSegment(refreshJwt)

  // Every check runs on every call, around fast-jwt's (whose verified-token cache answers a repeated
  // access token without looking at it again): the signature's encoding before, the rest after.
  function verifyAccessToken (token: string): AccessClaims {
    try {
      if (!hasCanonicalSignature(token)) throw new Error('encoding')
      const { header, payload } = accessJwt.verify<CompleteToken<AccessClaims>>(token)
      if (header.kid !== accessKid || !hasOnlyHeaderMembers(token, header, ownAccessHeader, ACCESS_HEADER_MEMBERS) ||
        !hasSaneClaims(payload, config.ACCESS_TOKEN_TTL) ||
        typeof payload.client_id !== 'string' || !Array.isArray(payload.roles) ||
        !hasNoDuplicateClaims(token, payload)) {
        throw new Error('claims')
      }
      return payload
    } catch {
      throw new InvalidTokenError()
    }
  }

  function verifyRefreshToken (token: string): RefreshClaims {
    try {
      if (!hasCanonicalSignature(token)) throw new Error('encoding')
      const { header, payload } = refreshJwt.verify<CompleteToken<RefreshClaims>>(token)
      if (!hasOnlyHeaderMembers(token, header, ownRefreshHeader, REFRESH_HEADER_MEMBERS) ||
        !hasSaneClaims(payload, config.REFRESH_IDLE_TTL) || !hasNoDuplicateClaims(token, payload)) {
        throw new Error('claims')
      }
      return payload
    } catch {
      throw invalidGrant()
    }
  }

  /** The RFC 6749 §5.1 body for a session whose live refresh jti is `refreshJti`. */
  function tokenResponse (input: { userId: string, sid: string, roles: string[], refreshJti: string, sessionExpiresAt: number }): TokenResponse {
    const now = Math.floor(Date.now() / 1000)
    const access = issueAccessToken(input)
    const refresh = issueRefreshToken({ ...input, jti: input.refreshJti, sessionExpiresAt: Math.floor(input.sessionExpiresAt / 1000), now })
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      refresh_token: refresh.token,
      refresh_expires_in: refresh.expiresIn
    }
  }

  return { verifyAccessToken, verifyRefreshToken, tokenResponse }
}

export type TokenService = ReturnType<typeof createTokenService>

/**
 * What fast-jwt leaves to the caller (RFC 8725 §3.10, RFC 9068 §4): ids are UUID strings before
 * anything looks them up, iat is not in the future, and the lifetime is not longer than we issue.
 */
function hasSaneClaims (payload: { sub: unknown, jti: unknown, sid: unknown, iat: unknown, exp: unknown }, maxLifetime: number): boolean {
  const { sub, jti, sid, iat, exp } = payload
  if (typeof sub !== 'string' || !UUID.test(sub)) return false
  if (typeof jti !== 'string' || !UUID.test(jti)) return false
  if (typeof sid !== 'string' || !UUID.test(sid)) return false
  if (typeof iat !== 'number' || typeof exp !== 'number' || !Number.isFinite(iat) || !Number.isFinite(exp)) return false
  if (iat > Date.now() / 1000 + LEEWAY_SECONDS) return false
  return exp - iat <= maxLifetime
}

/** The header segment of a token from this signer, or '' when it cannot sign (verify-only). */
function ownHeaderSegment (signer: JWT): string {
  try {
    const token = signer.sign({})
    return token.slice(0, token.indexOf('.'))
  } catch {
    return ''
  }
}

/**
 * One spelling per signature (RFC 7515 §2, RFC 4648 §3.5): the base64url alphabet only, no padding,
 * and the unused low bits of the last character zero. Node's base64 decoding, which fast-jwt uses,
 * ignores those bits, so without this check one Ed25519-signed token has 16 spellings that all
 * verify (an HS256 one 4), each a new entry in fast-jwt's cache. Header and payload need no such
 * check: their exact characters are what the signature covers.
 */
function hasCanonicalSignature (token: string): boolean {
  const signature = token.slice(token.lastIndexOf('.') + 1)
  if (!SIGNATURE_SEGMENT.test(signature)) return false
  const last = BASE64URL_VALUE[signature.charCodeAt(signature.length - 1)] as number
  switch (signature.length % 4) {
    case 0: return true
    case 2: return (last & 0x0f) === 0
    case 3: return (last & 0x03) === 0
    default: return false // a character left over encodes no whole byte
  }
}

/**
 * The header holds `members` members (those fast-jwt and the caller have checked), no other and
 * none twice. Our own signer's exact header segment passes at once.
 */
function hasOnlyHeaderMembers (token: string, header: Record<string, unknown>, ownSegment: string, members: number): boolean {
  const end = token.indexOf('.')
  if (ownSegment !== '' && end === ownSegment.length && token.startsWith(ownSegment)) return true
  return memberCount(header) === members && colonsOutsideStrings(Buffer.from(token.slice(0, end), 'base64url')) === members
}

/**
 * RFC 7515 §5.2 and RFC 8725 §3.1: a claims set with duplicate member names is rejected, while
 * JSON.parse keeps the last of each. A member was dropped exactly when the text holds more members
 * than the parsed value, and every member of JSON text is one `:` outside a string: counting those
 * (over the decoded bytes, since UTF-8 never puts a byte below 0x80 inside a multi-byte character)
 * against the parsed members finds a duplicate at any depth without parsing again.
 */
function hasNoDuplicateClaims (token: string, payload: unknown): boolean {
  const start = token.indexOf('.') + 1
  const json = Buffer.from(token.slice(start, token.lastIndexOf('.')), 'base64url')
  return colonsOutsideStrings(json) === memberCount(payload)
}

/** Own enumerable members of a parsed JSON value, counted through nested objects and arrays. */
function memberCount (value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0
  let count = 0
  if (Array.isArray(value)) {
    for (const item of value) count += memberCount(item)
    return count
  }
  for (const key in value) count += 1 + memberCount((value as Record<string, unknown>)[key])
  return count
}

function colonsOutsideStrings (json: Buffer): number {
  let colons = 0
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const byte = json[i]
    if (inString) {
      if (byte === BACKSLASH) i++
      else if (byte === QUOTE) inString = false
    } else if (byte === QUOTE) {
      inString = true
    } else if (byte === COLON) {
      colons++
    }
  }
  return colons
}

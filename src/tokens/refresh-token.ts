import { createSigner, createVerifier } from 'fast-jwt'
import { invalidGrant } from '../errors.js'
import { LEEWAY_SECONDS, hasCanonicalSignature, hasNoDuplicateClaims, hasOnlyHeaderMembers, hasSaneClaims } from './jwt-checks.js'

export const REFRESH_TOKEN_TYP = 'rt+jwt'
// Claims fast-jwt must find before anything else is checked (RFC 8725 §3.9).
const REFRESH_REQUIRED = ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid']
const REFRESH_HEADER_MEMBERS = 2 // alg, typ

export interface RefreshClaims {
  iss: string
  aud: string
  sub: string
  iat: number
  exp: number
  jti: string
  sid: string
}

export interface RefreshTokenOptions {
  issuer: string
  /** HS256 key, used for refresh tokens only. */
  secret: string
  /** The longest lifetime of one refresh token (the idle timeout), seconds. */
  maxLifetime: number
}

/**
 * Refresh tokens: HS256 pinned, header `typ: rt+jwt`, their own key and their own audience
 * (`<issuer>#refresh`), so an access token can never pass as a refresh token or the other way round.
 */
export function createRefreshTokens ({ issuer, secret, maxLifetime }: RefreshTokenOptions) {
  const audience = `${issuer}#refresh`
  const sign = createSigner({ algorithm: 'HS256', key: secret, header: { alg: 'HS256', typ: REFRESH_TOKEN_TYP }, iss: issuer, aud: audience })
  const verify = createVerifier({
    key: secret,
    algorithms: ['HS256'],
    checkTyp: REFRESH_TOKEN_TYP,
    allowedIss: issuer,
    allowedAud: audience,
    requiredClaims: REFRESH_REQUIRED,
    clockTolerance: LEEWAY_SECONDS * 1000, // milliseconds in fast-jwt
    complete: true
  }) as (token: string) => { header: Record<string, unknown>, payload: RefreshClaims }

  /** A token for the session's live jti, living `expiresIn` seconds. */
  function signRefreshToken (input: { userId: string, sid: string, jti: string, expiresIn: number }): string {
    const iat = Math.floor(Date.now() / 1000)
    return sign({ sub: input.userId, jti: input.jti, sid: input.sid, iat, exp: iat + input.expiresIn })
  }

  /** The claims of a valid refresh token; anything else is the one invalid_grant. Every check runs on every call. */
  function verifyRefreshToken (token: string): RefreshClaims {
    try {
      if (!hasCanonicalSignature(token)) throw new Error('encoding')
      const { header, payload } = verify(token)
      if (!hasOnlyHeaderMembers(token, header, REFRESH_HEADER_MEMBERS) ||
        !hasSaneClaims(payload, maxLifetime) || !hasNoDuplicateClaims(token, payload)) {
        throw new Error('claims')
      }
      return payload
    } catch {
      throw invalidGrant()
    }
  }

  return { signRefreshToken, verifyRefreshToken }
}

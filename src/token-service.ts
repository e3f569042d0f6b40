import { randomUUID } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
import type { VerifyAccessToken } from './access-token-verifier.js'
import type { Config } from './config.js'
import { invalidGrant } from './errors.js'
import { hasCanonicalSignature, hasNoDuplicateClaims, hasOnlyHeaderMembers, hasSaneClaims } from './jwt-checks.js'
import type { TokenResponse } from './schemas.js'

export const REFRESH_TOKEN_TYP = 'rt+jwt'
// RFC 9068 client_id: tokens from the password grant are issued to Tollgate's own first-party client.
export const FIRST_PARTY_CLIENT_ID = 'tollgate'
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

interface CompleteToken<T> { header: Record<string, unknown>, payload: T }

export interface TokenServiceDeps {
  config: Pick<Config, 'JWT_ISSUER' | 'JWT_AUDIENCE' | 'ACCESS_TOKEN_TTL' | 'REFRESH_IDLE_TTL'>
  /** Signs access tokens (its verify side is unused: see verifyAccessToken). */
  accessJwt: JWT
  refreshJwt: JWT
  verifyAccessToken: VerifyAccessToken
}

/** Signs and verifies Tollgate's two token types; knows nothing of HTTP or storage. */
export function createTokenService ({ config, accessJwt, refreshJwt, verifyAccessToken }: TokenServiceDeps) {
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

  // Every check runs on every call: the signature's encoding before fast-jwt, the rest after.
  function verifyRefreshToken (token: string): RefreshClaims {
    try {
      if (!hasCanonicalSignature(token)) throw new Error('encoding')
      const { header, payload } = refreshJwt.verify<CompleteToken<RefreshClaims>>(token)
      if (!hasOnlyHeaderMembers(token, header, REFRESH_HEADER_MEMBERS) ||
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

import { randomUUID } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
import type { Config } from './config.js'
import { InvalidTokenError, OAuthError } from './errors.js'
import type { TokenResponse } from './schemas.js'

export const ACCESS_TOKEN_TYP = 'at+jwt'
export const REFRESH_TOKEN_TYP = 'rt+jwt'
// RFC 9068 client_id: tokens from the password grant are issued to Tollgate's own first-party client.
export const FIRST_PARTY_CLIENT_ID = 'tollgate'
export const LEEWAY_SECONDS = 30

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

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

interface CompleteToken<T> { header: { kid?: unknown, typ?: unknown }, payload: T }

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

  function verifyAccessToken (token: string): AccessClaims {
    try {
      const { header, payload } = accessJwt.verify<CompleteToken<AccessClaims>>(token)
      if (header.kid !== accessKid || !hasSaneClaims(payload, config.ACCESS_TOKEN_TTL) ||
        typeof payload.client_id !== 'string' || !Array.isArray(payload.roles)) {
        throw new Error('claims')
      }
      return payload
    } catch {
      throw new InvalidTokenError()
    }
  }

  function verifyRefreshToken (token: string): RefreshClaims {
    try {
      const { payload } = refreshJwt.verify<CompleteToken<RefreshClaims>>(token)
      if (!hasSaneClaims(payload, config.REFRESH_IDLE_TTL)) throw new Error('claims')
      return payload
    } catch {
      throw new OAuthError('invalid_grant', 'The refresh token is invalid, expired or revoked')
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

  return { issueAccessToken, issueRefreshToken, verifyAccessToken, verifyRefreshToken, tokenResponse }
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

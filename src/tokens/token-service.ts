import type { KeyMaterial } from '../keys.js'
import type { TokenResponse } from '../schemas.js'
import { createAccessTokenSigner, createAccessTokenVerifier } from './access-token.js'
import { createRefreshTokens } from './refresh-token.js'

export interface TokenServiceOptions {
  issuer: string
  audience: string
  keys: KeyMaterial
  /** Access token lifetime, seconds. */
  accessTokenTtl: number
  /** Session idle timeout, seconds: the longest a refresh token lives. */
  refreshIdleTtl: number
}

/** Signs and verifies Tollgate's two token types; knows nothing of HTTP or storage. */
export function createTokenService ({ issuer, audience, keys, accessTokenTtl, refreshIdleTtl }: TokenServiceOptions) {
  const { access } = keys
  const signAccessToken = createAccessTokenSigner({ issuer, audience, key: access, ttl: accessTokenTtl })
  const verifyAccessToken = createAccessTokenVerifier({
    issuer,
    audience,
    keys: [
      access.alg === 'EdDSA'
        ? { alg: 'EdDSA', kid: access.kid, publicKey: access.publicKey }
        : { alg: 'HS256', kid: access.kid, secret: access.secret },
      ...keys.otherPublicKeys.map(key => ({ alg: 'EdDSA' as const, kid: key.kid, publicKey: key.publicKey }))
    ],
    maxLifetime: accessTokenTtl
  })
  const { signRefreshToken, verifyRefreshToken } = createRefreshTokens({ issuer, secret: keys.refreshSecret, maxLifetime: refreshIdleTtl })

  /** The RFC 6749 §5.1 body for a session whose live refresh jti is `refreshJti`. */
  function tokenResponse (input: { userId: string, sid: string, roles: string[], refreshJti: string, sessionExpiresAt: number }): TokenResponse {
    const now = Math.floor(Date.now() / 1000)
    const access = signAccessToken(input)
    // The refresh token lives for the idle timeout, cut off at the session's absolute expiry.
    const refreshExpiresIn = Math.max(1, Math.min(refreshIdleTtl, Math.floor(input.sessionExpiresAt / 1000) - now))
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      refresh_token: signRefreshToken({ userId: input.userId, sid: input.sid, jti: input.refreshJti, expiresIn: refreshExpiresIn }),
      refresh_expires_in: refreshExpiresIn
    }
  }

  return { verifyAccessToken, verifyRefreshToken, tokenResponse }
}

export type TokenService = ReturnType<typeof createTokenService>

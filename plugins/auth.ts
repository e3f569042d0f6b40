import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { VerifyAccessToken } from '../src/access-token-verifier.js'
import { InvalidTokenError, MissingTokenError, bearerChallenge } from '../src/errors.js'
import type { TokenStore } from '../src/token-store.js'

export interface AuthenticatedUser {
  id: string
  sid: string
  jti: string
  roles: string[]
  /** Access token expiry, unix seconds. */
  exp: number
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    user: AuthenticatedUser
  }
}

export interface AuthPluginOptions {
  /** Signature and claims: the Tollgate server's own verifier, or one built from a JWKS. */
  verifyAccessToken: VerifyAccessToken
  /** The revocation check: one Redis round trip (or the in-process store). */
  isAccessAllowed: TokenStore['isAccessAllowed']
}

// RFC 6750 §2.1: the scheme is case-insensitive, then exactly one token68.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i

/**
 * `onRequest: [fastify.authenticate]` protects a route: a valid access token that the token store
 * has not revoked. Redis errors propagate as 503 (DependencyError): never a pass. The reusable
 * unit: the server and plugins/verify-only.ts each hand it their verifier and revocation check.
 */
export default fp(async function authPlugin (fastify, { verifyAccessToken, isAccessAllowed }: AuthPluginOptions) {
  fastify.decorateRequest('user', null as unknown as AuthenticatedUser)
  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest, reply: FastifyReply) {
    try {
      const header = request.headers.authorization
      if (!header) throw new MissingTokenError()
      const match = BEARER.exec(header)
      if (!match) throw new InvalidTokenError()
      const claims = verifyAccessToken(match[1] as string)
      const allowed = await isAccessAllowed({ userId: claims.sub, sid: claims.sid, jti: claims.jti, iat: claims.iat, now: Date.now() })
      if (!allowed) throw new InvalidTokenError()
      request.user = { id: claims.sub, sid: claims.sid, jti: claims.jti, roles: claims.roles, exp: claims.exp }
    } catch (err) {
      // Set here, not only by Tollgate's error handler, so an embedding app's handler sends it too.
      if ((err as { statusCode?: number }).statusCode === 401) reply.header('www-authenticate', bearerChallenge(err))
      throw err
    }
  })
}, { name: 'auth' })

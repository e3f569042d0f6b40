import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { InvalidTokenError, MissingTokenError } from '../src/errors.js'
import type { AccessClaims } from '../src/token-service.js'

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

// RFC 6750 §2.1: the scheme is case-insensitive, then exactly one token68.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i

/**
 * `onRequest: [fastify.authenticate]` protects a route: a valid access token (verified by the tokens
 * plugin) that the token store has not revoked, checked in one Redis round trip. Redis errors
 * propagate as 503 from the store: never a pass.
 */
export default fp(async function authPlugin (fastify) {
  fastify.decorateRequest('user', null as unknown as AuthenticatedUser)
  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest) {
    const header = request.headers.authorization
    if (!header) throw new MissingTokenError()
    const match = BEARER.exec(header)
    if (!match) throw new InvalidTokenError()
    const claims: AccessClaims = fastify.tokens.verifyAccessToken(match[1] as string)
    const allowed = await fastify.tokenStore.isAccessAllowed({
      userId: claims.sub, sid: claims.sid, jti: claims.jti, iat: claims.iat, now: Date.now()
    })
    if (!allowed) throw new InvalidTokenError()
    request.user = { id: claims.sub, sid: claims.sid, jti: claims.jti, roles: claims.roles, exp: claims.exp }
  })
}, { name: 'auth', dependencies: ['tokens', 'token-store'] })

import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { InvalidTokenError, MissingTokenError, challengeOf } from '../src/errors.js'
import type { AccessClaims } from '../src/tokens/access-token.js'
import type { TokenStore } from '../src/token-store/index.js'
import { RETRY_AFTER_SECONDS } from './errors.js'

/** `request.user` on a route behind `authenticate`: the verified, unrevoked access token's subject. */
export interface AuthenticatedUser {
  /** The user's id (the token's `sub`), a UUID. */
  id: string
  /** The session the token belongs to (`sid`). */
  sid: string
  /** The token's own id (`jti`). */
  jti: string
  roles: string[]
  /** Access token expiry, unix seconds. */
  exp: number
}

/** `onRequest: [app.authenticate]` lets a request through only with a valid, unrevoked access token. */
// Named out here: inside the augmentation below, the emitted .d.ts would lose the import of FastifyReply.
export type Authenticate = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

declare module 'fastify' {
  interface FastifyInstance {
    /** `onRequest: [app.authenticate]` lets a request through only with a valid, unrevoked access token. */
    authenticate: Authenticate
  }
  interface FastifyRequest {
    /** Set by `authenticate`; null on routes without it. */
    user: AuthenticatedUser
  }
}

/** Verifies an access token: synchronous, except while a JWKS is fetched again for an unknown kid. */
export type VerifyAccessToken = (token: string) => AccessClaims | Promise<AccessClaims>

export interface AuthenticatePluginOptions {
  verifyAccessToken: VerifyAccessToken
  /**
   * The revocation check: one Redis round trip (or the in-process store), or introspection at the
   * server (which needs the token itself); omitted, tokens are checked statelessly.
   */
  isAccessAllowed?: (access: Parameters<TokenStore['isAccessAllowed']>[0] & { exp: number }, token: string) => Promise<boolean>
  /** Called when a token that verifies is refused as revoked. */
  onRevoked?: () => void
}

// RFC 6750 §2.1: the scheme is case-insensitive, then exactly one token68.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i
const BEARER_SCHEME = /^Bearer(?: |$)/i

/**
 * Gives the app `authenticate` and `request.user`: the one piece of Tollgate that reaches a host's
 * own routes (the tollgate plugin and tollgate/verify each register it). Redis errors propagate as
 * 503 (DependencyError): never a pass.
 */
export default fp(async function authenticatePlugin (fastify, { verifyAccessToken, isAccessAllowed, onRevoked }: AuthenticatePluginOptions) {
  // A host that uses @fastify/jwt for its own routes has decorated `user` already; both write it.
  if (!fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null as unknown as AuthenticatedUser)
  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest, reply: FastifyReply) {
    try {
      const header = request.headers.authorization
      if (!header) throw new MissingTokenError()
      const match = BEARER.exec(header)
      // Another scheme (Basic…) presents no access token: a challenge without an error (RFC 6750 §3.1).
      if (!match) throw BEARER_SCHEME.test(header) ? new InvalidTokenError() : new MissingTokenError()
      const token = match[1] as string
      const verified = verifyAccessToken(token)
      const claims = verified instanceof Promise ? await verified : verified
      if (isAccessAllowed && !await isAccessAllowed({ userId: claims.sub, sid: claims.sid, jti: claims.jti, iat: claims.iat, exp: claims.exp, now: Date.now() }, token)) {
        onRevoked?.()
        throw new InvalidTokenError()
      }
      request.user = { id: claims.sub, sid: claims.sid, jti: claims.jti, roles: claims.roles, exp: claims.exp }
    } catch (err) {
      // Set here, not only by Tollgate's error handler, so a host's own handler sends them too.
      const status = (err as { statusCode?: number }).statusCode
      if (status === 401) reply.header('www-authenticate', challengeOf(err))
      else if (status === 503) reply.header('retry-after', RETRY_AFTER_SECONDS)
      throw err
    }
  })
}, { name: 'tollgate-authenticate', fastify: '5.x' })

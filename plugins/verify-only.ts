import { createPublicKey } from 'node:crypto'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { createAccessTokenVerifier, type VerificationKey } from '../src/access-token-verifier.js'
import { ConfigSchema } from '../src/config.js'
import { createRedisAccessCheck } from '../src/redis-token-store.js'
import authPlugin from './auth.js'
import { waitForFirstConnection } from './redis.js'

export interface VerifyOnlyOptions {
  /** The Tollgate server's public keys, as its GET /.well-known/jwks.json returns them. */
  jwks: { keys: unknown[] }
  /**
   * A client of the Tollgate server's Redis, for the revocation check. Create it with the server's
   * REDIS_CLIENT_OPTIONS (plugins/redis.ts) so that an outage answers 503 at once. The app owns it.
   */
  redis: Redis
  /** The server's JWT_ISSUER and JWT_AUDIENCE: required, since a mismatch refuses every token. */
  issuer: string
  audience: string
  /** The server's REDIS_KEY_PREFIX and ACCESS_TOKEN_TTL; the server's defaults if omitted. */
  redisKeyPrefix?: string
  maxTokenLifetime?: number
}

const DEFAULTS = {
  redisKeyPrefix: ConfigSchema.properties.REDIS_KEY_PREFIX.default as string,
  maxTokenLifetime: ConfigSchema.properties.ACCESS_TOKEN_TTL.default as number
}

/**
 * Verify-only mode, for another Fastify app: `fastify.authenticate` accepts the access tokens that a
 * Tollgate server issues, with the same checks and the same revocation as the server's own routes,
 * and no routes, database or private keys. Every key of the JWKS verifies (chosen by kid). The JWKS
 * is read once, at registration: a key the server adds or withdraws counts here after a restart.
 *
 *   await app.register(verifyOnly, { jwks, redis: new Redis(url, REDIS_CLIENT_OPTIONS), issuer, audience })
 *   app.get('/orders', { onRequest: [app.authenticate] }, async (request) => request.user)
 */
export default fp(async function verifyOnlyPlugin (fastify, options: VerifyOnlyOptions) {
  const { issuer, audience, redisKeyPrefix, maxTokenLifetime } = { ...DEFAULTS, ...options }
  if (!issuer || !audience) throw new Error('verify-only: issuer and audience are required (the server\'s JWT_ISSUER and JWT_AUDIENCE)')
  const keys = options.jwks.keys.map(verificationKey)
  // A lazy client (REDIS_CLIENT_OPTIONS) that was never connected would answer the first requests with 503.
  await waitForFirstConnection(options.redis)
  await fastify.register(authPlugin, {
    verifyAccessToken: createAccessTokenVerifier({ issuer, audience, keys, maxLifetime: maxTokenLifetime }),
    isAccessAllowed: createRedisAccessCheck({ redis: options.redis, prefix: redisKeyPrefix })
  })
}, { name: 'tollgate-verify-only' })

/** An Ed25519 JWK as Tollgate publishes it; anything else is a configuration error, found at boot. */
function verificationKey (jwk: unknown): VerificationKey {
  const { kty, crv, x, kid, alg, use } = (jwk ?? {}) as Record<string, unknown>
  if (kty !== 'OKP' || crv !== 'Ed25519' || typeof x !== 'string' || typeof kid !== 'string' ||
    (alg !== undefined && alg !== 'EdDSA') || (use !== undefined && use !== 'sig')) {
    throw new Error(`verify-only: unsupported JWK ${JSON.stringify({ kty, crv, kid, alg, use })}: Tollgate signs with Ed25519 keys (kty OKP, crv Ed25519, alg EdDSA) that have a kid`)
  }
  const publicKey = createPublicKey({ key: { kty, crv, x }, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString()
  return { alg: 'EdDSA', kid, publicKey }
}

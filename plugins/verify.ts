import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createIntrospectionCheck } from '../src/tokens/introspection-check.js'
import { createJwksVerifier, type Jwks } from '../src/tokens/jwks-verifier.js'
import { waitForFirstConnection, type RedisClient } from '../src/redis-client.js'
import { createRedisAccessCheck } from '../src/token-store/redis.js'
import authenticatePlugin from './authenticate.js'

export type { AuthenticatedUser } from './authenticate.js'
export type { Jwks } from '../src/tokens/jwks-verifier.js'
export type { RedisClient } from '../src/redis-client.js'
export { REDIS_CLIENT_OPTIONS as redisClientOptions, REDIS_CLUSTER_OPTIONS as redisClusterOptions } from '../src/redis-client.js'

export interface TollgateVerifyOptions {
  /** The Tollgate server's JWKS URL (`…/.well-known/jwks.json`): fetched at registration, and again for an unknown `kid`. */
  jwksUrl?: string | undefined
  /** The server's keys inline, instead of `jwksUrl` (never fetched again). */
  jwks?: Jwks | undefined
  /** The server's `issuer` (JWT_ISSUER): required, since a mismatch refuses every token. */
  issuer: string
  /** The server's `audience` (JWT_AUDIENCE): required. */
  audience: string
  /**
   * A client of the Tollgate server's Redis (ioredis 5 or 6): each request is checked against the
   * server's revocations in one round trip, so a logout counts here at once. Create it with
   * `redisClientOptions` so an outage answers 503 at once. You own it; it is never closed here.
   */
  redis?: RedisClient | undefined
  /**
   * For a service that cannot reach the server's Redis: ask the server's `POST …/auth/introspect`
   * (RFC 7662) as one of its INTROSPECTION_CLIENTS. A live answer is trusted for `cacheTtl`
   * seconds (default 5), so a logout counts here within that; an unreachable server is 503.
   */
  introspection?: { url: string, clientId: string, clientSecret: string, cacheTtl?: number | undefined } | undefined
  /**
   * Verify statelessly, without Redis or introspection: a token stays accepted after logout,
   * logout-all or a password change until it expires (the server's accessTokenTtl, 10 minutes by
   * default). Exactly one of `redis`, `introspection` and this must be given.
   */
  acceptRevokedTokensUntilExpiry?: boolean | undefined
  /** The server's `redisKeyPrefix` (REDIS_KEY_PREFIX). Default `tollgate`. */
  redisKeyPrefix?: string | undefined
  /** The server's `accessTokenTtl`, seconds: a longer-lived token is refused. Default 600. */
  maxTokenLifetime?: number | undefined
  /** Least time between two fetches of the JWKS for unknown kids, seconds. Default 60. */
  jwksCooldown?: number | undefined
  /**
   * How old the JWKS fetched from `jwksUrl` may get, seconds (at least 1): then it is fetched again
   * before the next token is verified, so a key withdrawn from it (say, leaked) stops verifying here
   * within this time, without a restart. A fetch that fails keeps the keys in use until the next
   * try, a max age later. Default 300.
   */
  jwksMaxAge?: number | undefined
}

const DEFAULT_REDIS_KEY_PREFIX = 'tollgate'
const DEFAULT_MAX_TOKEN_LIFETIME = 600
const DEFAULT_JWKS_COOLDOWN = 60
const DEFAULT_JWKS_MAX_AGE = 300
const DEFAULT_INTROSPECTION_CACHE_TTL = 5

/**
 * tollgate/verify, for a resource server: `app.authenticate` accepts the access tokens a Tollgate
 * server issues, with the server's own checks (and, given its Redis, its revocations), and no
 * routes, database or private keys. It loads neither the ORM, PGlite nor argon2.
 */
async function tollgateVerify (fastify: FastifyInstance, options: TollgateVerifyOptions) {
  const { issuer, audience, redis, introspection } = options
  if (!issuer || !audience) throw new Error('tollgate/verify: `issuer` and `audience` are required (the server\'s issuer and audience)')
  if ((options.jwksUrl === undefined) === (options.jwks === undefined)) throw new Error('tollgate/verify: pass exactly one of `jwksUrl` and `jwks`')
  const choices = [redis && '`redis`', introspection && '`introspection`', options.acceptRevokedTokensUntilExpiry === true && '`acceptRevokedTokensUntilExpiry`'].filter(Boolean)
  if (choices.length > 1) {
    throw new Error(`tollgate/verify: pass one of ${choices.join(', ')}, not several`)
  }
  if (choices.length === 0) {
    throw new Error('tollgate/verify: pass `redis` (a client of the Tollgate server\'s Redis) so that a logout on the server counts here at once, ' +
      'or `introspection` (the server\'s introspection endpoint and client credentials) so that it counts within seconds, ' +
      'or set `acceptRevokedTokensUntilExpiry: true` to verify without either: a logged-out token is then accepted until it expires')
  }
  if (introspection && (!introspection.url || !introspection.clientId || !introspection.clientSecret)) {
    throw new Error('tollgate/verify: `introspection` needs `url`, `clientId` and `clientSecret`')
  }
  for (const [name, url] of [['jwksUrl', options.jwksUrl], ['introspection.url', introspection?.url]] as const) {
    if (url !== undefined && !isTrustedUrl(url)) {
      throw new Error(`tollgate/verify: \`${name}\` must be an https:// URL (http:// only on this machine's loopback): whoever can change what it answers decides which tokens pass`)
    }
  }
  for (const [name, value] of [['maxTokenLifetime', options.maxTokenLifetime], ['jwksCooldown', options.jwksCooldown], ['jwksMaxAge', options.jwksMaxAge], ['introspection.cacheTtl', introspection?.cacheTtl]] as const) {
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new Error(`tollgate/verify: \`${name}\` must be a number of seconds, 0 or more`)
  }
  // 0 would fetch the JWKS before every request, or for every token naming an unknown kid (which
  // anyone can forge).
  for (const [name, value] of [['jwksMaxAge', options.jwksMaxAge], ['jwksCooldown', options.jwksCooldown]] as const) {
    if (value !== undefined && !(value >= 1)) throw new Error(`tollgate/verify: \`${name}\` must be a number of seconds, 1 or more`)
  }

  const verifyAccessToken = await createJwksVerifier({
    source: options.jwksUrl !== undefined ? { url: options.jwksUrl } : { jwks: options.jwks as Jwks },
    issuer,
    audience,
    maxLifetime: options.maxTokenLifetime ?? DEFAULT_MAX_TOKEN_LIFETIME,
    cooldownMs: (options.jwksCooldown ?? DEFAULT_JWKS_COOLDOWN) * 1000,
    maxAgeMs: (options.jwksMaxAge ?? DEFAULT_JWKS_MAX_AGE) * 1000,
    onRefreshError: (err) => fastify.log.warn({ err: { message: (err as Error).message } }, 'tollgate/verify: the JWKS could not be fetched again')
  })

  let warnedRevoked = false
  if (redis) {
    // A lazy client (redisClientOptions) that was never connected would answer the first requests with 503.
    await waitForFirstConnection(redis)
  }
  await fastify.register(authenticatePlugin, {
    verifyAccessToken,
    ...(introspection && {
      isAccessAllowed: createIntrospectionCheck({
        url: introspection.url,
        clientId: introspection.clientId,
        clientSecret: introspection.clientSecret,
        cacheTtlMs: (introspection.cacheTtl ?? DEFAULT_INTROSPECTION_CACHE_TTL) * 1000
      })
    }),
    ...(redis && {
      isAccessAllowed: createRedisAccessCheck({ redis, prefix: options.redisKeyPrefix ?? DEFAULT_REDIS_KEY_PREFIX }),
      onRevoked () {
        if (warnedRevoked) return
        warnedRevoked = true
        // Once: every token refused as revoked is what a wrong Redis or key prefix looks like.
        fastify.log.warn('tollgate/verify: a valid token was refused because its session is not live in Redis. If every token is refused, ' +
          '`redis` is not the Tollgate server\'s Redis, `redisKeyPrefix` differs from the server\'s, or the server runs its in-process store ' +
          '(no Redis to share: use `acceptRevokedTokensUntilExpiry: true`)')
      }
    })
  })
}

/** https, or http to a loopback address (a server on the same machine, and tests). */
function isTrustedUrl (value: string): boolean {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  if (url.protocol === 'https:') return true
  return url.protocol === 'http:' && (url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname))
}

const tollgateVerifyPlugin = fp(tollgateVerify, { name: 'tollgate-verify', fastify: '5.x' })

export default tollgateVerifyPlugin
export { tollgateVerifyPlugin as tollgateVerify }

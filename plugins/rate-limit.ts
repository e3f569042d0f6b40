import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../src/config.js'
import { normaliseEmail } from '../src/entities/user.js'
import { DependencyError, RateLimitedError } from '../src/errors.js'
import type { RedisClient } from '../src/redis-client.js'

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

export interface RateLimits {
  /** Per client IP, per route: login, register, refresh, revoke, email verification, password forgot and reset. */
  perIp: Hook
  /** Per account: login attempts for one email, from anywhere. Needs the parsed body. */
  perAccount: Hook
  /**
   * Per user: checks of the current password behind an access token (password change, account
   * deletion), keyed by `request.user.id`. Needs `authenticate` to have run; a preHandler.
   */
  perUser: Hook
  /**
   * Per client IP on the introspection endpoint, before client authentication: one client's budget
   * (INTROSPECTION_RATE_LIMIT_MAX), not RATE_LIMIT_MAX, since a resource server introspects its
   * users' tokens from one address. It bounds secret guessing, at a rate far too slow for secrets
   * of 32+ characters.
   */
  perIntrospectionIp: Hook
  /** Per introspection client (RFC 7662 §4), once it has authenticated. */
  perClient: (clientId: string, reply: FastifyReply) => Promise<void>
  /**
   * Per address: password-reset requests for the email in the body, known or not, from anywhere:
   * RESET_REQUESTS_PER_ADDRESS a window of RESET_REQUEST_WINDOW_SECONDS. Needs the parsed body.
   */
  perResetAddress: Hook
  /** Per user: one verification mail a minute, keyed by `request.user.id`; a preHandler. */
  perUserVerificationMail: Hook
  /**
   * Per address: counts one verification mail to `email` (registration's, or one asked for again):
   * undefined within VERIFICATION_MAILS_PER_ADDRESS a window of VERIFICATION_MAIL_WINDOW_SECONDS,
   * else the seconds until the window ends. By address, not user: an account registered at someone
   * else's address, deleted and registered again, is a new user each time.
   */
  verificationMailTo: (email: string) => Promise<number | undefined>
}

interface Store {
  incr (key: string, cb: (err: Error | null, res?: { current: number, ttl: number }) => void, timeWindow: number, max: number): void
}

// @fastify/rate-limit's own stores (not exported, untyped). Tollgate uses them directly rather than
// registering the plugin, whose decorators a host that rate-limits its own routes already has.
const require = createRequire(import.meta.url)
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as new (continueExceeding: boolean, exponentialBackoff: boolean, redis: unknown, namespace: string) => Store
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => Store

// Each accepted reset request mails its address: a budget of a few an hour keeps a stranger from
// flooding someone's mailbox (login's 10 per 15 minutes would be ~960 mails a day), and still
// leaves its owner a retry or two when a mail is slow or lost.
export const RESET_REQUESTS_PER_ADDRESS = 3
export const RESET_REQUEST_WINDOW_SECONDS = 3600
// The same budget for verification mails, counted apart: a stranger who registered someone's
// address cannot spend its owner's reset requests.
export const VERIFICATION_MAILS_PER_ADDRESS = 3
export const VERIFICATION_MAIL_WINDOW_SECONDS = 3600

/** Counts one request against `key`; a store error (Redis down or slow) fails closed as 503. */
function increment (store: Store, key: string, windowMs: number, max: number): Promise<{ current: number, ttl: number }> {
  return new Promise((resolve, reject) => store.incr(key, (err, res) => {
    if (err || !res) reject(new DependencyError('redis', err))
    else resolve(res)
  }, windowMs, max))
}

/** The brute-force limits of login, register, refresh and password checks: on Redis when there is one, in process otherwise. */
export function createRateLimits (config: Config, redis: RedisClient | undefined): RateLimits {
  /** Counts one against `key`: undefined within `max` in the window, else the seconds until it ends. */
  function counter (options: { max: number, windowSeconds: number }) {
    const store = redis
      ? new RedisStore(false, false, redis, `${config.REDIS_KEY_PREFIX}:rl:`)
      : new LocalStore(false, false)
    const windowMs = options.windowSeconds * 1000
    return async function count (key: string): Promise<number | undefined> {
      // A hash tag around the whole key: on Redis Cluster each counter is its own slot, never split.
      const { current, ttl } = await increment(store, `{${key}}`, windowMs, options.max)
      return current <= options.max ? undefined : Math.max(1, Math.ceil(ttl / 1000))
    }
  }

  /** Counts a request against `key`; over `max` in the window, 429 with Retry-After. */
  function limiter (options: { max: number, windowSeconds: number }) {
    const count = counter(options)
    return async function enforceRateLimit (key: string, reply: FastifyReply) {
      const retryAfter = await count(key)
      if (retryAfter === undefined) return
      reply.header('retry-after', String(retryAfter))
      throw new RateLimitedError()
    }
  }

  const ipLimit = limiter({ max: config.RATE_LIMIT_MAX, windowSeconds: config.RATE_LIMIT_WINDOW })
  const accountLimit = limiter({ max: config.ACCOUNT_RATE_LIMIT_MAX, windowSeconds: config.ACCOUNT_RATE_LIMIT_WINDOW })
  const clientLimit = limiter({ max: config.INTROSPECTION_RATE_LIMIT_MAX, windowSeconds: config.RATE_LIMIT_WINDOW })
  const verificationMailLimit = limiter({ max: 1, windowSeconds: 60 })
  const resetRequestLimit = limiter({ max: RESET_REQUESTS_PER_ADDRESS, windowSeconds: RESET_REQUEST_WINDOW_SECONDS })
  const verificationMailCount = counter({ max: VERIFICATION_MAILS_PER_ADDRESS, windowSeconds: VERIFICATION_MAIL_WINDOW_SECONDS })
  // Hashed, so no email address is written to Redis.
  const hashedEmail = (email: string) => createHash('sha256').update(normaliseEmail(email)).digest('base64url')
  const emailKey = (request: FastifyRequest) => hashedEmail(String((request.body as { email?: unknown })?.email ?? ''))
  return {
    // request.ip honours X-Forwarded-For only from the proxies the host's trustProxy names.
    perIp: (request, reply) => ipLimit(`ip:${request.routeOptions.url}:${request.ip}`, reply),
    perAccount: (request, reply) => accountLimit(`account:${emailKey(request)}`, reply),
    // Same limits as login, but a budget of its own, shared by password change and account deletion
    // (splitting guesses across the two routes or across addresses buys nothing). Not login's key:
    // that is a hash of the email in the body, and the token carries only the user id, so sharing it
    // would cost a database read before every limit check. The price: a token holder gets
    // ACCOUNT_RATE_LIMIT_MAX guesses per window here besides login's, instead of unlimited ones.
    perUser: (request, reply) => accountLimit(`password-check:${request.user.id}`, reply),
    perIntrospectionIp: (request, reply) => clientLimit(`introspection-ip:${request.ip}`, reply),
    perClient: (clientId, reply) => clientLimit(`client:${clientId}`, reply),
    // Counted before the address is looked up, so a 429 says nothing about it.
    perResetAddress: (request, reply) => resetRequestLimit(`reset-request:${emailKey(request)}`, reply),
    perUserVerificationMail: (request, reply) => verificationMailLimit(`verification-mail:${request.user.id}`, reply),
    verificationMailTo: email => verificationMailCount(`verification-mail-to:${hashedEmail(email)}`)
  }
}

import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import rateLimit from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { normaliseEmail } from '../src/entities/user.js'
import { DependencyError, RateLimitedError } from '../src/errors.js'

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

declare module 'fastify' {
  interface FastifyInstance {
    rateLimits: {
      /** Per client IP, per route: login, register, refresh. */
      perIp: Hook
      /** Per account: login attempts for one email, from anywhere. Needs the parsed body. */
      perAccount: Hook
    }
  }
}

interface Store {
  incr (key: string, cb: (err: Error | null, res?: { current: number, ttl: number }) => void, timeWindow: number, max: number): void
  child (routeOptions: unknown): Store
}

// The library's own Redis store (not exported, untyped), wrapped below so that its failures fail closed.
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore.js') as
  new (continueExceeding: boolean, exponentialBackoff: boolean, redis: unknown, namespace: string) => Store

/** A store error (Redis down or slow) becomes a 503, never a request let through. */
function failClosed (inner: Store): Store {
  return {
    incr (key, cb, timeWindow, max) {
      inner.incr(key, (err, res) => err ? cb(new DependencyError('redis', err)) : cb(null, res), timeWindow, max)
    },
    child: (routeOptions) => failClosed(inner.child(routeOptions))
  }
}

export default fp(async function rateLimitPlugin (fastify) {
  const { config } = fastify
  const redis = fastify.hasDecorator('redis') ? fastify.redis : undefined
  const namespace = `${config.REDIS_KEY_PREFIX}:rl:`
  await fastify.register(rateLimit, {
    global: false,
    skipOnError: false,
    // Without Redis (embedded default) the library's in-process LRU store counts.
    ...(redis && {
      store: class FailClosedRedisStore {
        constructor () {
          return failClosed(new RedisStore(false, false, redis, namespace))
        }
      } as unknown as never
    })
  })

  function limiter (options: { max: number, windowSeconds: number, key: (request: FastifyRequest) => string }): Hook {
    const check = fastify.createRateLimit({ max: options.max, timeWindow: options.windowSeconds * 1000, keyGenerator: options.key })
    return async function enforceRateLimit (request, reply) {
      const result = await check(request)
      if (result.isAllowed || !result.isExceeded) return
      reply.header('retry-after', String(Math.max(1, result.ttlInSeconds)))
      throw new RateLimitedError()
    }
  }

  fastify.decorate('rateLimits', {
    // request.ip honours X-Forwarded-For only from proxies that TRUST_PROXY names.
    perIp: limiter({ max: config.RATE_LIMIT_MAX, windowSeconds: config.RATE_LIMIT_WINDOW, key: request => `ip:${request.routeOptions.url}:${request.ip}` }),
    perAccount: limiter({
      max: config.ACCOUNT_RATE_LIMIT_MAX,
      windowSeconds: config.ACCOUNT_RATE_LIMIT_WINDOW,
      // Hashed, so no email address is written to Redis.
      key: request => `account:${createHash('sha256').update(normaliseEmail(String((request.body as { email?: unknown })?.email ?? ''))).digest('base64url')}`
    })
  })
}, { name: 'rate-limit', dependencies: ['config'] })

import fp from 'fastify-plugin'
import { createRedisTokenStore } from '../src/redis-token-store.js'
import type { TokenStore } from '../src/token-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    tokenStore: TokenStore
  }
}

export default fp(async function tokenStorePlugin (fastify) {
  const { config } = fastify
  fastify.decorate('tokenStore', createRedisTokenStore({
    redis: fastify.redis,
    prefix: config.REDIS_KEY_PREFIX,
    idleTtl: config.REFRESH_IDLE_TTL * 1000,
    reuseInterval: config.REFRESH_REUSE_INTERVAL * 1000,
    absoluteTtl: config.REFRESH_TOKEN_TTL * 1000
  }))
}, { name: 'token-store', dependencies: ['config', 'redis'] })

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import fp from 'fastify-plugin'
import { createMemoryTokenStore } from '../src/memory-token-store.js'
import { createRedisTokenStore } from '../src/redis-token-store.js'
import type { TokenStore } from '../src/token-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    tokenStore: TokenStore
  }
}

/** Redis when the redis plugin is registered; otherwise the in-process store of the embedded default. */
export default fp(async function tokenStorePlugin (fastify) {
  const { config } = fastify
  const options = {
    idleTtl: config.REFRESH_IDLE_TTL * 1000,
    reuseInterval: config.REFRESH_REUSE_INTERVAL * 1000,
    absoluteTtl: config.REFRESH_TOKEN_TTL * 1000
  }
  if (fastify.hasDecorator('redis')) {
    fastify.decorate('tokenStore', createRedisTokenStore({ redis: fastify.redis, prefix: config.REDIS_KEY_PREFIX, ...options }))
    return
  }
  mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 })
  const store = createMemoryTokenStore({ ...options, snapshotPath: join(config.DATA_DIR, 'token-store.json') })
  fastify.addHook('onClose', async function closeTokenStore () {
    store.close()
  })
  fastify.log.warn('REDIS_URL is not set: the in-process token store serves this one process only (sessions are kept in DATA_DIR across graceful restarts, lost on a crash). Production needs REDIS_URL.')
  fastify.decorate('tokenStore', store)
}, { name: 'token-store', dependencies: ['config'] })

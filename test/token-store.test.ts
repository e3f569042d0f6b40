import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Redis } from 'ioredis'
import { createMemoryTokenStore } from '../src/memory-token-store.js'
import { createRedisTokenStore } from '../src/redis-token-store.js'
import { REDIS_CLIENT_OPTIONS } from '../plugins/redis.js'
import { REDIS_URL, deleteRedisPrefix } from './helper.js'
import { tokenStoreContract } from './token-store-contract.js'

tokenStoreContract(t, 'redis', async (t, options) => {
  const redis = new Redis(REDIS_URL, REDIS_CLIENT_OPTIONS)
  await redis.connect()
  const prefix = `t-${randomBytes(6).toString('hex')}`
  t.teardown(async () => {
    redis.disconnect()
    await deleteRedisPrefix(prefix)
  })
  return createRedisTokenStore({ redis, prefix, ...options })
})

tokenStoreContract(t, 'memory', async (t, options) => {
  const store = createMemoryTokenStore(options)
  t.teardown(() => store.close())
  return store
})

import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Redis } from 'ioredis'
import { REDIS_CLIENT_OPTIONS } from '../src/redis-client.js'
import { tokenStoreContract } from '../src/token-store/contract.js'
import { createMemoryTokenStore } from '../src/token-store/memory.js'
import { createRedisTokenStore } from '../src/token-store/redis.js'
import { REDIS_URL, deleteRedisPrefix } from './helper.js'

// The exported contract suite, run against both stores Tollgate ships.

t.test('redis', async t => {
  const cases = tokenStoreContract(async options => {
    const redis = new Redis(REDIS_URL, REDIS_CLIENT_OPTIONS)
    await redis.connect()
    const prefix = `t-${randomBytes(6).toString('hex')}`
    const store = createRedisTokenStore({ redis, prefix, ...options })
    // The store never closes the client it was handed: this test owns it.
    return {
      ...store,
      async close () {
        await store.close()
        redis.disconnect()
        await deleteRedisPrefix(prefix)
      }
    }
  })
  for (const c of cases) t.test(c.name, c.run)
})

t.test('memory', async t => {
  for (const c of tokenStoreContract(async options => createMemoryTokenStore(options))) t.test(c.name, c.run)
})

// An app whose next session write (a login's new session, a refresh's rotation) is sent to a Redis
// that has just hung. Through HTTP alone that never happens: each of those requests counts its
// rate limit in Redis first, so a Redis that is already hung answers 503 before the write is sent.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import tollgate, { type TollgateOptions } from '../../plugins/tollgate.js'
import { REDIS_CLIENT_OPTIONS } from '../../src/redis-client.js'
import type { TokenStore } from '../../src/token-store/index.js'
import { createRedisTokenStore } from '../../src/token-store/redis.js'
import type { Store } from '../flows/support.js'
import { pluginOptions, type TestContext } from '../helper.js'
import type { RedisServer } from './redis-server.js'

// Long enough for SIGSTOP to take effect before the write reaches the socket.
const STOPPED_AFTER_MS = 50

/**
 * A host app with the tollgate plugin on `server`, and a Redis token store of its own (strict rotation) that, after
 * `hangBeforeNextWrite()`, pauses `server` (SIGSTOP) just before its next createSession or rotate
 * is sent. The caller resumes it.
 */
export async function appWithHungWrites (t: TestContext, server: RedisServer, options: TollgateOptions = {}): Promise<{ app: FastifyInstance, store: Store, hangBeforeNextWrite: () => void }> {
  const redis = new Redis(server.url, REDIS_CLIENT_OPTIONS)
  redis.on('error', () => { /* the outage is the point */ })
  await redis.connect()
  t.teardown(() => redis.disconnect())
  const prefix = `t-${randomBytes(6).toString('hex')}`
  const store = createRedisTokenStore({ redis, prefix, idleTtl: 3_600_000, reuseInterval: 0, absoluteTtl: 3_600_000 })
  let hang = false
  async function hangIfAsked () {
    if (!hang) return
    hang = false
    server.pause()
    await sleep(STOPPED_AFTER_MS)
  }
  const tokenStore: TokenStore = {
    ...store,
    createSession: async (session) => { await hangIfAsked(); return await store.createSession(session) },
    rotate: async (request) => { await hangIfAsked(); return await store.rotate(request) }
  }
  // The rate limits count on `server` too, through the plugin's own client.
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tollgate, await pluginOptions(t, { ...options, redis: server.url, tokenStore }))
  await app.ready()
  return { app, store: { redis, prefix }, hangBeforeNextWrite: () => { hang = true } }
}

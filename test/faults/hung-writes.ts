// An app whose next session write (a login's new session, a refresh's rotation) is sent to a Redis
// that has just hung. Through HTTP alone that never happens: each of those requests counts its
// rate limit in Redis first, so a Redis that is already hung answers 503 before the write is sent.
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import tollgate, { type TollgateOptions } from '../../plugins/tollgate.js'
import type { TokenStore } from '../../src/token-store/index.js'
import { createRedisTokenStore } from '../../src/token-store/redis.js'
import { expectAllowlist, expectTokenResponse, refreshJson, type Store } from '../flows/support.js'
import { pluginOptions, storeRedis, type TestContext, type TokenPair } from '../helper.js'
import type { RedisServer } from './redis-server.js'
import { eventually, expectUnavailableFast } from './support.js'

// Long enough for SIGSTOP to take effect before the write reaches the socket.
const STOPPED_AFTER_MS = 50
/** How long Redis stays hung: longer than the write deadline (2.5 s after sending), so the write arrives late. */
export const HUNG_FOR_MS = 4000

export type AppWithHungWrites = Awaited<ReturnType<typeof appWithHungWrites>>

/**
 * A host app with the tollgate plugin on `server`, and a Redis token store of its own (strict rotation) that, after
 * `hangBeforeNextWrite()`, pauses `server` (SIGSTOP) just before its next createSession or rotate
 * is sent. The caller resumes it.
 */
export async function appWithHungWrites (t: TestContext, server: RedisServer, options: TollgateOptions = {}): Promise<{ app: FastifyInstance, store: Store, hangBeforeNextWrite: () => void }> {
  const { redis, prefix } = await storeRedis(t, server.url)
  redis.on('error', () => { /* the outage is the point */ })
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

/**
 * A refresh whose rotation is sent to a Redis that then stays hung for HUNG_FOR_MS: 503 at once, and
 * once Redis resumes, the same refresh token rotates, since the late rotation was dropped (rotation
 * is strict here: had it been applied, the retry would be a reuse). Returns the retry's token pair.
 */
export async function expectLateRotationDropped (t: Test, server: RedisServer, { app, store, hangBeforeNextWrite }: AppWithHungWrites, userId: string, refreshToken: string): Promise<TokenPair> {
  hangBeforeNextWrite()
  await expectUnavailableFast(t, 'refresh, its rotation sent to the hung Redis', () => refreshJson(app, refreshToken))
  await sleep(HUNG_FOR_MS)
  server.resume()
  const retried = await eventually('retried refresh', 200, () => refreshJson(app, refreshToken))
  const pair = expectTokenResponse(t, retried, 'the retry rotates: the late rotation was not applied')
  await expectAllowlist(t, store, userId, [pair.refresh_token], 'exactly the retried token is live')
  return pair
}

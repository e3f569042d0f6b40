/**
 * A benchmark server, run by bench/run.ts in its own process (never by hand): it waits for a
 * `start` message, listens on 127.0.0.1 on a free port and reports it, answers `memory`, and
 * closes on `close` or when the harness goes away.
 *   hello       — bare Fastify with one route: the ceiling.
 *   verify-only — the same bare Fastify app plus tollgate/verify (the Tollgate
 *                 server's public key and Redis) and GET /bench/whoami behind app.authenticate:
 *                 what authentication alone costs another app.
 *   tollgate    — the standalone server (buildServer, loadConfig) plus GET /bench/whoami behind
 *                 app.authenticate, as a host app that registers the tollgate plugin has it.
 */
import { readFile } from 'node:fs/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import tollgateVerify from '../plugins/verify.js'
import { loadConfig } from '../src/config.js'
import { loadKeys } from '../src/keys.js'
import { REDIS_CLIENT_OPTIONS } from '../src/redis-client.js'
import { buildServer } from '../src/server.js'
import type { FromServer, MemorySample, ToServer } from './lib/protocol.js'

const CLOSE_GRACE_MS = 5_000
let app: FastifyInstance | undefined

function send (message: FromServer): void {
  if (process.send && process.connected) process.send(message)
}

async function buildHello (): Promise<FastifyInstance> {
  const hello = Fastify({ logger: false })
  hello.get('/', async () => ({ hello: 'world' }))
  return hello
}

type StartConfig = NonNullable<Extract<ToServer, { type: 'start' }>['config']>

async function buildVerifyOnly (input: StartConfig): Promise<FastifyInstance> {
  const config = loadConfig({ ...input, LOG_LEVEL: 'silent' })
  const { access } = await loadKeys(config)
  if (access.alg !== 'EdDSA' || !config.REDIS_URL) throw new Error('verify-only mode needs an Ed25519 key and REDIS_URL')
  // Lazy: the plugin connects it at registration, as for any app that uses it.
  const redis = new Redis(config.REDIS_URL, REDIS_CLIENT_OPTIONS)
  // The same Fastify options as hello, so the difference is the plugin.
  const host = Fastify({ logger: false })
  host.addHook('onClose', async () => { redis.disconnect() })
  await host.register(tollgateVerify, {
    jwks: { keys: [access.publicJwk] },
    redis,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    redisKeyPrefix: config.REDIS_KEY_PREFIX,
    maxTokenLifetime: config.ACCESS_TOKEN_TTL
  })
  host.get('/bench/whoami', { onRequest: [host.authenticate] }, async (request) => request.user)
  return host
}

async function buildTollgate (input: StartConfig): Promise<FastifyInstance> {
  // BENCH_LOG_LEVEL=error shows, e.g., which dependency a 503 came from.
  const config = loadConfig({ ...input, HOST: '127.0.0.1', PORT: 0, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent' })
  const server = await buildServer(config)
  server.get('/bench/whoami', { onRequest: [server.authenticate] }, async (request) => request.user)
  return server
}

/** CPU time of the main (event-loop) thread alone, µs; null off Linux. The rest is libuv's pool, GC, etc. */
async function mainThreadMicros (): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/self/task/${process.pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10_000 // USER_HZ = 100
  } catch {
    return null
  }
}

function memory (): MemorySample {
  const before = process.memoryUsage()
  const gc = (globalThis as { gc?: () => void }).gc
  let heapUsedAfterGc: number | null = null
  let rssAfterGc: number | null = null
  if (gc) {
    gc()
    const after = process.memoryUsage()
    heapUsedAfterGc = after.heapUsed
    rssAfterGc = after.rss
  }
  return { rss: before.rss, heapUsed: before.heapUsed, heapTotal: before.heapTotal, external: before.external, heapUsedAfterGc, rssAfterGc }
}

async function shutdown (code: number): Promise<never> {
  // Exit even if close hangs; a normal exit also writes --cpu-prof profiles.
  setTimeout(() => process.exit(code), CLOSE_GRACE_MS).unref()
  try {
    await app?.close()
  } catch { /* exiting anyway */ }
  process.exit(code)
}

process.on('disconnect', () => { shutdown(0).catch(() => process.exit(1)) })
process.on('message', (message: ToServer) => {
  (async () => {
    try {
      if (message.type === 'start') {
        app = message.mode === 'hello'
          ? await buildHello()
          : message.mode === 'verify-only' ? await buildVerifyOnly(message.config ?? {}) : await buildTollgate(message.config ?? {})
        await app.listen({ host: '127.0.0.1', port: 0 })
        const address = app.server.address()
        if (!address || typeof address === 'string') throw new Error('no TCP address')
        send({ type: 'listening', port: address.port })
      } else if (message.type === 'cpu') {
        const { user, system } = process.cpuUsage()
        send({ type: 'cpu', micros: user + system, mainMicros: await mainThreadMicros() })
      } else if (message.type === 'memory') {
        send({ type: 'memory', ...memory() })
      } else if (message.type === 'close') {
        await shutdown(0)
      }
    } catch (err) {
      send({ type: 'fatal', message: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) })
      await shutdown(1)
    }
  })().catch(() => process.exit(1))
})

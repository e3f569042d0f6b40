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

/** Resident anonymous and file-backed memory, bytes, from /proc/self/status; nulls off Linux. */
async function residentKinds (): Promise<{ anon: number | null, file: number | null }> {
  try {
    const status = await readFile('/proc/self/status', 'utf8')
    const kib = (field: string) => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
      return m ? Number(m[1]) * 1024 : null
    }
    return { anon: kib('RssAnon'), file: kib('RssFile') }
  } catch {
    return { anon: null, file: null }
  }
}

/** How long RSS must stay unchanged after the GC before it is read, and the most the server waits. */
const SETTLE_STEP_MS = 100
const SETTLE_STEPS = 3
const SETTLE_MAX_MS = 5_000

/**
 * RSS once it stops moving after a full GC: V8 returns the pages that GC emptied on a background
 * thread, within about 10–150 ms on this machine, so a reading taken at once still holds 10–50 MiB
 * that are about to go, and how much depends on the scheduling of that thread (the noise of the
 * RSS figures of issue 13). Waits until RSS stayed within 64 KiB over SETTLE_STEPS steps.
 */
async function settledRss (): Promise<{ rss: number, waitedMs: number }> {
  const start = Date.now()
  let last = process.memoryUsage.rss()
  let stable = 0
  while (stable < SETTLE_STEPS && Date.now() - start < SETTLE_MAX_MS) {
    await new Promise(resolve => setTimeout(resolve, SETTLE_STEP_MS))
    const now = process.memoryUsage.rss()
    stable = Math.abs(now - last) <= 64 * 1024 ? stable + 1 : 0
    last = now
  }
  return { rss: last, waitedMs: Date.now() - start }
}

async function memory (): Promise<MemorySample> {
  const before = process.memoryUsage()
  const gc = (globalThis as { gc?: () => void }).gc
  const sample: MemorySample = {
    rss: before.rss,
    heapUsed: before.heapUsed,
    heapTotal: before.heapTotal,
    external: before.external,
    arrayBuffers: before.arrayBuffers,
    heapUsedAfterGc: null,
    rssAfterGc: null,
    rssRightAfterGc: null,
    settleMs: null,
    heapTotalAfterGc: null,
    externalAfterGc: null,
    arrayBuffersAfterGc: null,
    rssAnonAfterGc: null,
    rssFileAfterGc: null
  }
  if (gc) {
    gc()
    const rightAfter = process.memoryUsage.rss()
    const settled = await settledRss()
    const after = process.memoryUsage()
    const kinds = await residentKinds()
    Object.assign(sample, {
      heapUsedAfterGc: after.heapUsed,
      rssAfterGc: settled.rss,
      rssRightAfterGc: rightAfter,
      settleMs: settled.waitedMs,
      heapTotalAfterGc: after.heapTotal,
      externalAfterGc: after.external,
      arrayBuffersAfterGc: after.arrayBuffers,
      rssAnonAfterGc: kinds.anon,
      rssFileAfterGc: kinds.file
    })
  }
  return sample
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
        send({ type: 'memory', ...await memory() })
      } else if (message.type === 'close') {
        await shutdown(0)
      }
    } catch (err) {
      send({ type: 'fatal', message: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) })
      await shutdown(1)
    }
  })().catch(() => process.exit(1))
})

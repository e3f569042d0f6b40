/**
 * Tollgate's benchmark harness (issue #6): `npm run bench` (full) or `npm run bench -- --smoke` (CI).
 *
 * Servers run in child processes on 127.0.0.1 (free ports), so autocannon, here, does not share an
 * event loop with them. Scenarios, alternated round by round (a b b+ b' c d e, a b b+ b' c d e, …):
 *   a   bare Fastify hello route: the ceiling
 *   b   GET /bench/whoami behind app.authenticate in the same bare app with Tollgate's verify-only
 *       plugin registered: authentication alone (verification + revocation check)
 *   b+  the same route inside the whole Tollgate app (its security headers, logger, error handler…)
 *   b'  GET /users/me with the same tokens
 *   c   POST /auth/refresh, every request presenting a live refresh token
 *   d   POST /auth/login with valid credentials
 *   e   raw argon2id verifies at src/password.ts's parameters, in a child process: the ceiling for d
 * Then a memory phase: RSS of a fresh whole-app server after 10k, 50k and 100k protected requests
 * (and further checkpoints up to --memory-total), and Redis bytes per live session. Results go to
 * stdout and bench/results/latest.json.
 *
 * Flags (see BENCHMARKS.md):
 *   --smoke            one round of a few hundred requests; exit 1 on any error or non-2xx (CI)
 *   --profile          every server under --cpu-prof (one Tollgate server per scenario); summaries of
 *                      the measured rounds' self time; profiles in bench/results/server-*.cpuprofile
 *   --compare DIR      also run b, b', c, d against a Tollgate server started from the checkout DIR
 *                      (e.g. a scratch copy with one change), alternating with this checkout's, and
 *                      report the paired ratios: an A/B test that cancels most machine noise. The
 *                      setup's logins go through a third server, stopped before measuring. Even so,
 *                      an A/A run (both sides the same code) moved by up to 15 % in 4 rounds: run
 *                      A/Bs both ways, with 6-10 rounds, and trust only what both directions agree on
 *   --only a,b,…       a subset of the scenarios
 *   --skip-memory      no memory phase
 *   --memory-total N   protected requests in the memory phase (default 100000), sampled after 10k,
 *                      50k, 100k, 200k, 300k, 500k, 1M, 2M… and N: does RSS plateau or keep growing?
 *   --only-memory      no scenarios: setup, the memory phase and the Redis bytes only
 *   --rounds N  --duration S  --connections C  --users U
 *   --enforce          exit 3 when a target is missed (never in smoke mode)
 * Exit codes: 0 ok; 1 errors or non-2xx answers (or a harness failure); 3 a target missed with --enforce.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { ChildProcess } from 'node:child_process'
import type { Redis } from 'ioredis'
import type { ConfigInput } from '../src/config.js'
import { killAll, stopAll, stopChild } from './lib/children.js'
import { PASSWORD, inParallel, login, register } from './lib/http.js'
import { RefreshPool, bearerRequests, load, problemsOf, type Budget, type LoadRequest, type Measurement, type RefreshSession } from './lib/load.js'
import { cpuBetween, cpuSnapshot } from './lib/machine.js'
import { formatProfile, nowUs, summariseProfile, type ProfileSummary } from './lib/profile.js'
import { collectProfile, quiesce, runVerifier, serverMemory, startServer, startVerifier, type ServerHandle } from './lib/servers.js'
import type { MemorySample } from './lib/protocol.js'
import { POSTGRES_URL, REDIS_URL, createDatabase, deleteRedisPrefix, dropDatabase, machineInfo, redisClient, scanKeys, withRedis } from './lib/services.js'
import { median, round } from './lib/stats.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_DIR = join(ROOT, 'bench', 'results')

// ---------------------------------------------------------------------------------------------
// Options

const BASE = ['a', 'b', 'b+', "b'", 'c', 'd', 'e'] as const
type Base = typeof BASE[number]
const TITLES: Record<Base, string> = {
  a: 'bare Fastify hello (ceiling)',
  b: 'GET /bench/whoami, verify-only plugin',
  'b+': 'GET /bench/whoami in the whole Tollgate app',
  "b'": 'GET /users/me',
  c: 'POST /auth/refresh (rotation)',
  d: 'POST /auth/login',
  e: 'argon2id verify (ceiling for d)'
}
/** The scenarios that --compare runs against the other checkout too. */
const COMPARED: Base[] = ['b', 'b+', "b'", 'c', 'd']

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    enforce: { type: 'boolean', default: false },
    'skip-memory': { type: 'boolean', default: false },
    'only-memory': { type: 'boolean', default: false },
    'memory-total': { type: 'string' },
    compare: { type: 'string' },
    only: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
    users: { type: 'string' }
  }
})

function intFlag (value: string | undefined, fallback: number, min: number, max: number, name: string): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: expected an integer from ${min} to ${max}`)
  return n
}

function onlyFlag (value: string | undefined): Base[] {
  if (value === undefined) return [...BASE]
  const picked = value.split(',').map(s => s.trim()).filter(Boolean)
  for (const p of picked) if (!(BASE as readonly string[]).includes(p)) throw new Error(`--only: unknown scenario ${p} (use ${BASE.join(',')})`)
  return BASE.filter(b => picked.includes(b))
}

const SMOKE = flags.smoke === true
const ONLY_MEMORY = flags['only-memory'] === true
if (ONLY_MEMORY && (SMOKE || flags['skip-memory'] === true || flags.only !== undefined || flags.compare !== undefined || flags.profile === true)) {
  throw new Error('--only-memory: not with --smoke, --skip-memory, --only, --compare or --profile')
}
/** Where the memory phase samples (requests so far): these checkpoints up to the total, and the total. */
const MEMORY_CHECKPOINTS = [10_000, 50_000, 100_000, 200_000, 300_000, 500_000, 1_000_000, 2_000_000, 3_000_000, 5_000_000]
const memoryTotal = intFlag(flags['memory-total'], 100_000, 100_000, 10_000_000, 'memory-total')
const compareRoot = flags.compare === undefined ? null : resolve(flags.compare)
if (compareRoot && !existsSync(join(compareRoot, 'bench', 'server.ts'))) throw new Error(`--compare: ${compareRoot}/bench/server.ts not found`)
const settings = {
  smoke: SMOKE,
  profile: flags.profile === true,
  compare: compareRoot,
  only: ONLY_MEMORY ? [] : onlyFlag(flags.only),
  onlyMemory: ONLY_MEMORY,
  rounds: intFlag(flags.rounds, SMOKE ? 1 : 4, 1, 20, 'rounds'),
  durationS: intFlag(flags.duration, 7, 1, 60, 'duration'),
  connections: intFlag(flags.connections, 50, 1, 500, 'connections'),
  users: intFlag(flags.users, SMOKE ? 20 : 200, 1, 2000, 'users'),
  /** Smoke mode: requests per scenario instead of a duration. */
  smokeAmount: { a: 100, b: 100, 'b+': 100, "b'": 100, c: 100, d: 50, e: 50 } as Record<Base, number>,
  warmupS: SMOKE ? 0 : 2,
  memory: SMOKE || flags['skip-memory'] === true
    ? null
    : { total: memoryTotal, checkpoints: [...new Set([...MEMORY_CHECKPOINTS.filter(n => n < memoryTotal), memoryTotal])] },
  redisSessionCounts: flags['skip-memory'] === true ? [] : SMOKE ? [1, 5] : [1, 10, 100]
}
if (!SMOKE && !ONLY_MEMORY && settings.rounds < 3) throw new Error('--rounds: at least 3 outside smoke mode')

/** Cores used by processes outside the benchmark above which a run is flagged as disturbed. */
const OTHER_CORES_WARNING = 0.25
/** Cores the hypervisor took from this VM (steal) above which a run is flagged as disturbed. */
const STEAL_CORES_WARNING = 0.1
/** A disturbed run is measured again, at most this many times; the table counts the repeats. */
const MAX_REPEATS = 2

function disturbed (m: Measurement): boolean {
  return (m.otherCores ?? 0) > OTHER_CORES_WARNING || (m.stealCores ?? 0) > STEAL_CORES_WARNING
}

interface Scenario {
  /** The base label, with `*` for the --compare checkout's run of it. */
  id: string
  base: Base
  variant: boolean
  title: string
  server: ServerHandle | null
  run (budget: Budget): Promise<Measurement>
}

// ---------------------------------------------------------------------------------------------
// Cleanup: children are killed on every way out; the database and Redis keys are removed.

const resources = { database: null as string | null, prefix: null as string | null, statsRedis: null as Redis | null }
let cleaning: Promise<void> | null = null

function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    await stopAll(5_000).catch(() => killAll())
    resources.statsRedis?.disconnect()
    if (resources.prefix) await deleteRedisPrefix(resources.prefix).catch(err => console.error('cleanup: redis:', err.message))
    if (resources.database) await dropDatabase(resources.database).catch(err => console.error('cleanup: postgres:', err.message))
  })()
  return cleaning
}

process.on('exit', killAll)
// A closed stdout (e.g. `| head`) must not kill the run before it cleans up.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err
  })
}
process.on('uncaughtException', (err) => {
  try {
    console.error('benchmark failed:', err)
  } catch { /* stderr gone */ }
  setTimeout(() => process.exit(1), 20_000).unref()
  cleanup().finally(() => process.exit(1))
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping servers and cleaning up`)
    setTimeout(() => process.exit(130), 20_000).unref()
    cleanup().finally(() => process.exit(130))
  })
}

// ---------------------------------------------------------------------------------------------
// Memory

/** One sample of the memory phase: the server's memory after `requests` protected requests. */
interface RssSample extends MemorySample {
  requests: number
  /** Seconds since the memory server started. */
  seconds: number
  /** The harness machine's 1-minute load average when sampled: other processes on the machine. */
  loadAverage: number
}

type RssResult =
  | { measured: false, skipped: string, afterLoad?: MemorySample }
  | {
    measured: true
    requests: { first: number, total: number, non2xx: number, errors: number }
    samples: RssSample[]
    /** The samples after 10k and 100k requests, the figures compared since issue 6. */
    at10k: RssSample
    at100k: RssSample
    /** RSS after a full GC, 10k → 100k requests. */
    rssGrowthPercent: number
    /** RSS after a full GC, 10k → the last sample. */
    rssGrowthToLastPercent: number
    withinTenPercent: boolean
  }

// After a full GC when the server allows it, so the figure does not depend on when the last
// burst's garbage happens to be collected; and once RSS settled after it (see bench/server.ts).
const rssOf = (m: MemorySample) => m.rssAfterGc ?? m.rss

/** Requests per autocannon run in the memory phase: each run stays well within load()'s 120 s guard. */
const MEMORY_CHUNK = 50_000

/**
 * RSS of a fresh whole-app server (as in b+) after 10k protected requests, 50k, 100k and the further
 * checkpoints up to the total: a leak grows with every step, a high-water mark levels off.
 *
 * The server runs under tsx, like every bench server: tsx's module-loader thread holds ~45 MiB of
 * RSS after boot (its own V8 heap) that it releases at some point, ~30 s after start when the server
 * is idle, 25–140 s under this load; RSS then drops by ~40 MiB between two samples, whatever the
 * requests. The compiled server (`npm start`) has neither: ~70 MiB less RSS, and no such step.
 */
async function rssPhase (config: ConfigInput, tokens: string[], loaded: ServerHandle): Promise<RssResult> {
  if (!settings.memory) {
    if (!SMOKE) return { measured: false, skipped: '--skip-memory' }
    return { measured: false, skipped: 'smoke mode: no 10k/100k comparison', afterLoad: await serverMemory(loaded) }
  }
  const { total, checkpoints } = settings.memory
  const startedAt = Date.now()
  const server = await startServer({ name: 'memory', mode: 'tollgate', root: ROOT, config, nodeFlags: ['--expose-gc'] })
  try {
    const requests = bearerRequests('/bench/whoami', tokens)
    const samples: RssSample[] = []
    let done = 0
    let non2xx = 0
    let errors = 0
    for (const checkpoint of checkpoints) {
      while (done < checkpoint) {
        const amount = Math.min(MEMORY_CHUNK, checkpoint - done)
        const m = await load(server, requests, { amount }, settings.connections)
        done += amount
        non2xx += m.non2xx
        errors += m.errors + m.timeouts
      }
      await new Promise(resolve => setTimeout(resolve, 500))
      const sample: RssSample = { requests: done, seconds: round((Date.now() - startedAt) / 1000, 1), loadAverage: round(os.loadavg()[0] ?? Number.NaN, 2), ...await serverMemory(server) }
      samples.push(sample)
      console.log(`  ${formatRssSample(sample, samples[0] as RssSample)}`)
    }
    const at = (n: number) => samples.find(x => x.requests === n) as RssSample
    const at10k = at(10_000)
    const at100k = at(100_000)
    const last = samples[samples.length - 1] as RssSample
    const growth = (rssOf(at100k) - rssOf(at10k)) / rssOf(at10k)
    return {
      measured: true,
      requests: { first: at10k.requests, total, non2xx, errors },
      samples,
      at10k,
      at100k,
      rssGrowthPercent: round(growth * 100, 1),
      rssGrowthToLastPercent: round((rssOf(last) - rssOf(at10k)) / rssOf(at10k) * 100, 1),
      // A leak check: growing by more than 10 % fails; shrinking (the heap settling after start-up) does not.
      withinTenPercent: growth <= 0.10
    }
  } finally {
    await stopChild(server.child)
  }
}

function formatRssSample (x: RssSample, first: RssSample): string {
  const mib = (n: number | null) => n === null ? '-' : (n / 2 ** 20).toFixed(1)
  const growth = (rssOf(x) - rssOf(first)) / rssOf(first) * 100
  return `${x.requests.toLocaleString('en-US').padStart(9)} requests (${String(x.seconds).padStart(5)} s, load ${x.loadAverage.toFixed(2)}): ` +
    `RSS after GC ${mib(rssOf(x))} MiB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} %; anon ${mib(x.rssAnonAfterGc)}, file ${mib(x.rssFileAfterGc)}; settled in ${x.settleMs ?? '-'} ms, read at once ${mib(x.rssRightAfterGc)}), before GC ${mib(x.rss)}; ` +
    `heap used after GC ${mib(x.heapUsedAfterGc)} of ${mib(x.heapTotalAfterGc)}; external ${mib(x.externalAfterGc)}, arrayBuffers ${mib(x.arrayBuffersAfterGc)} (MiB)`
}

/** MEMORY USAGE of every key of one user with 1..N live sessions (logins), and the bytes per session. */
async function redisPerSession (port: number, prefix: string) {
  const email = `bench-memory-${randomBytes(4).toString('hex')}@example.com`
  const userId = await register(port, email)
  const userBase = `${prefix}:{${userId}}:`
  const results = []
  let sessions = 0
  for (const target of settings.redisSessionCounts) {
    await inParallel(Array.from({ length: target - sessions }), 8, () => login(port, email))
    sessions = target
    const rows = await withRedis(async redis => {
      const out = []
      for (const key of await scanKeys(redis, `${userBase}*`)) {
        const bytes = Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
        const encoding = String(await redis.call('OBJECT', 'ENCODING', key))
        out.push({ key: key.slice(userBase.length).replace(/^s:.*/, 's:<sid>'), type: await redis.type(key), encoding, bytes })
      }
      return out
    })
    const totalBytes = rows.reduce((s, r) => s + r.bytes, 0)
    const byKey: Record<string, { count: number, type: string, encoding: string, bytes: number }> = {}
    for (const r of rows) {
      const k = byKey[r.key] ??= { count: 0, type: r.type, encoding: r.encoding, bytes: 0 }
      k.count++
      k.bytes += r.bytes
    }
    results.push({ sessions, keys: rows.length, totalBytes, bytesPerSession: Math.round(totalBytes / sessions), byKey })
  }
  return results
}

// ---------------------------------------------------------------------------------------------
// Reporting

const fmt = {
  rps: (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-',
  ms: (n: number) => Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : '-',
  pct: (n: number) => Number.isFinite(n) ? `${(n * 100).toFixed(1)} %` : '-',
  mib: (n: number) => Number.isFinite(n) ? `${(n / 2 ** 20).toFixed(1)} MiB` : '-'
}

function table (rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows.map(r => r.map((cell, i) => i <= 1 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)).join('  ')).join('\n')
}

function cores (m: Measurement): string {
  return `cores: server ${m.serverCores.toFixed(2)}${m.serverMainCores === null || m.serverMainCores === undefined ? '' : ` (main ${m.serverMainCores.toFixed(2)})`} ac ${m.loaderCores.toFixed(2)} redis ${(m.redisCores ?? 0).toFixed(2)} pg ${(m.postgresCores ?? 0).toFixed(2)} other ${(m.otherCores ?? 0).toFixed(2)} steal ${(m.stealCores ?? 0).toFixed(2)}${disturbed(m) ? ' (DISTURBED)' : ''}`
}

interface Summary {
  title: string
  rps: number
  p50: number
  p99: number
  /** Server CPU time per successful request, µs: robust to a busy machine, unlike req/s. */
  cpuUsPerRequest: number
  /** Of which on the main (event-loop) thread. */
  mainUsPerRequest: number | null
  /** CPU per successful request of every process measured: server, autocannon, Redis, PostgreSQL. */
  wholeMachineUsPerRequest: number
  ok: number
  problems: number
  cores: { server: number, serverMain: number | null, autocannon: number, redis: number, postgres: number, other: number, steal: number }
  /** Rounds whose kept run was still disturbed after the repeats. */
  disturbedRounds: number
  /** Disturbed runs measured again (their results are not in the medians; their errors are counted). */
  repeatedRuns: number
}

function summarise (title: string, ms: Measurement[], repeatedRuns: number): Summary {
  const med = (pick: (m: Measurement) => number, digits: number) => round(median(ms.map(pick)), digits)
  return {
    title,
    rps: med(m => m.rps, 1),
    p50: med(m => m.p50, 3),
    p99: med(m => m.p99, 3),
    cpuUsPerRequest: med(m => m.serverCores * 1e6 / m.rps, 0),
    mainUsPerRequest: ms.some(m => m.serverMainCores === null || m.serverMainCores === undefined) ? null : med(m => (m.serverMainCores as number) * 1e6 / m.rps, 0),
    wholeMachineUsPerRequest: med(m => (m.serverCores + m.loaderCores + (m.redisCores ?? 0) + (m.postgresCores ?? 0)) * 1e6 / m.rps, 1),
    ok: ms.reduce((t, m) => t + m.ok, 0),
    problems: ms.reduce((t, m) => t + problemsOf(m), 0),
    cores: {
      server: med(m => m.serverCores, 2),
      serverMain: ms.some(m => m.serverMainCores === null || m.serverMainCores === undefined) ? null : med(m => m.serverMainCores as number, 2),
      autocannon: med(m => m.loaderCores, 2),
      redis: med(m => m.redisCores ?? 0, 2),
      postgres: med(m => m.postgresCores ?? 0, 2),
      other: med(m => m.otherCores ?? 0, 2),
      steal: med(m => m.stealCores ?? 0, 2)
    },
    disturbedRounds: ms.filter(disturbed).length,
    repeatedRuns
  }
}

function roundForJson (m: Measurement) {
  const c = (v: number | null | undefined) => v === null || v === undefined ? null : round(v, 2)
  return {
    rps: round(m.rps, 1),
    p50: round(m.p50, 3),
    p99: round(m.p99, 3),
    ok: m.ok,
    non2xx: m.non2xx,
    errors: m.errors,
    timeouts: m.timeouts,
    seconds: round(m.seconds, 2),
    statusCodes: m.statusCodes,
    failures: m.failures,
    cores: { server: c(m.serverCores), serverMainThread: c(m.serverMainCores), autocannon: c(m.loaderCores), redis: c(m.redisCores), postgres: c(m.postgresCores), other: c(m.otherCores), steal: c(m.stealCores), machine: c(m.machineCores) }
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main (): Promise<number> {
  const started = Date.now()
  await mkdir(RESULTS_DIR, { recursive: true })
  if (settings.profile) {
    for (const f of await readdir(RESULTS_DIR)) {
      if (f.endsWith('.cpuprofile') || f.startsWith('profile-')) await rm(join(RESULTS_DIR, f), { recursive: true, force: true })
    }
  }
  const machine = await machineInfo().catch((err: Error) => {
    throw new Error(`PostgreSQL (${POSTGRES_URL}) and Redis (${REDIS_URL}) must be up: ${err.message}`)
  })
  const has = (b: Base) => settings.only.includes(b)
  console.log(`Tollgate benchmark${SMOKE ? ' (smoke)' : ''}${settings.profile ? ' (profiling: numbers are not comparable)' : ''}`)
  console.log(`machine: ${machine.nproc} cores (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres}, Redis ${machine.redis}`)
  console.log(`settings: ${settings.rounds} round(s), ${SMOKE ? 'smoke amounts' : `${settings.durationS} s per scenario`}, ${settings.connections} connections, ${settings.users} users, scenarios ${ONLY_MEMORY ? 'none (--only-memory)' : settings.only.join(' ')}${compareRoot ? `, compared with ${compareRoot}` : ''}${settings.memory ? `; memory phase: ${settings.memory.total.toLocaleString('en-US')} requests` : ''}`)
  if (machine.loadAverageAtStart > 1) console.log(`WARNING: load average ${machine.loadAverageAtStart} at the start: other processes share the machine; see the "other" cores`)

  const database = await createDatabase()
  resources.database = database
  const prefix = `tollgate-bench-${randomBytes(6).toString('hex')}`
  resources.prefix = prefix
  console.log(`database ${database}, Redis prefix ${prefix} (both removed at the end)`)
  const statsRedis = redisClient()
  resources.statsRedis = statsRedis
  await statsRedis.connect()
  const config: ConfigInput = {
    DATABASE_URL: `${POSTGRES_URL}/${database}`,
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    ACCESS_TOKEN_PRIVATE_KEY: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    REFRESH_TOKEN_SECRET: randomBytes(32).toString('base64url'),
    // Outlives the run, so the setup's access tokens stay valid.
    ACCESS_TOKEN_TTL: 3600,
    // All load comes from one IP and a few hundred accounts: the limits go to their maximum so that
    // nothing is refused, while every request still pays for its rate-limit checks. (A config schema
    // without these variables ignores them.)
    RATE_LIMIT_MAX: 1_000_000,
    ACCOUNT_RATE_LIMIT_MAX: 1_000_000,
    DATA_DIR: join(os.tmpdir(), `${prefix}-unused`)
  }

  // Servers. One Tollgate server serves b+, b', c and d; with --profile each gets its own, so each
  // profile holds one scenario's traffic. The first Tollgate server migrates the fresh database
  // before any other boots. b runs on its own verify-only app, which needs no database.
  const profileDir = settings.profile ? RESULTS_DIR : undefined
  const verifierReady = has('e') ? startVerifier(ROOT) : Promise.resolve(null)
  const helloReady = has('a') ? startServer({ name: 'a', mode: 'hello', root: ROOT, profileDir }) : Promise.resolve(null)
  const verifyOnlyReady = has('b') ? startServer({ name: 'b', mode: 'verify-only', root: ROOT, config, profileDir }) : Promise.resolve(null)
  const tollgate = async (name: string) => startServer({ name, mode: 'tollgate', root: ROOT, config, profileDir })
  const servers = {} as Record<'b' | 'b+' | "b'" | 'c' | 'd', ServerHandle>
  // An A/B sets up on a server of its own, stopped before any measurement: when this checkout's
  // server did the setup (hundreds of argon2 logins), the compared checkout won by 5-15 % either way.
  const setupServer = compareRoot ? await tollgate('setup') : null
  if (settings.profile) {
    // One at a time: booting three under the profiler at once timed out connecting to PostgreSQL on a slow VM.
    servers.d = await tollgate('d')
    Object.assign(servers, { 'b+': await tollgate('b+'), "b'": await tollgate('b2'), c: await tollgate('c') })
  } else {
    const t = await tollgate('tollgate')
    Object.assign(servers, { 'b+': t, "b'": t, c: t, d: t })
  }
  const compareServers = compareRoot
    ? {
        tollgate: await startServer({ name: 'cmp', mode: 'tollgate', root: compareRoot, config, profileDir }),
        verifyOnly: has('b') ? await startServer({ name: 'cmp-b', mode: 'verify-only', root: compareRoot, config, profileDir }) : null
      }
    : null
  const [hello, verifyOnlyServer, verifier] = await Promise.all([helloReady, verifyOnlyReady, verifierReady]) as [ServerHandle | null, ServerHandle | null, ChildProcess | null]
  if (verifyOnlyServer) servers.b = verifyOnlyServer
  console.log(`servers: ${hello ? `a=${hello.port} ` : ''}${verifyOnlyServer ? `b=${verifyOnlyServer.port} ` : ''}b+=${servers['b+'].port} b'=${servers["b'"].port} c=${servers.c.port} d=${servers.d.port}${compareServers ? ` compare=${compareServers.tollgate.port}` : ''} (${((Date.now() - started) / 1000).toFixed(1)} s)`)

  // Users, registered and logged in through the login server (so b's profile holds b's traffic only).
  // Access tokens (b, b') and refresh tokens (c) come from different sessions, so c's rotations never
  // touch b's sessions; there are more refresh sessions than connections.
  const setupStart = Date.now()
  const setupPort = (setupServer ?? servers.d).port
  const emails = Array.from({ length: settings.users }, (_, i) => `bench-${i}-${randomBytes(3).toString('hex')}@example.com`)
  const users = await inParallel(emails, 8, async email => {
    await register(setupPort, email)
    return { email, accessToken: (await login(setupPort, email)).access }
  })
  const tokens = users.map(u => u.accessToken)
  const sessionCount = has('c') ? Math.max(settings.users, settings.connections + 10) : 0
  const sessions: RefreshSession[] = await inParallel(Array.from({ length: sessionCount }, (_, i) => users[i % users.length] as typeof users[number]), 8,
    async user => ({ email: user.email, refreshToken: (await login(setupPort, user.email)).refresh }))
  const refreshPool = new RefreshPool(sessions)
  if (setupServer) await stopChild(setupServer.child)
  // Every measured Tollgate server registers a user, as one in production has: a process's first
  // write can change what every later request costs (MikroORM's flush turned on Node's promise hooks
  // for good, issue 13), and an A/B whose servers never wrote would not see it.
  const measured = new Set([servers['b+'], servers["b'"], servers.c, servers.d, ...(compareServers ? [compareServers.tollgate] : [])])
  await Promise.all([...measured].map(server => register(server.port, `bench-first-write-${randomBytes(6).toString('hex')}@example.com`)))
  console.log(`setup: ${users.length} users, ${users.length + sessions.length} sessions${setupServer ? ' on a server of their own, now stopped' : ''} (${((Date.now() - setupStart) / 1000).toFixed(1)} s)`)

  // Scenarios, in round order; a --compare variant right after its base.
  let nextLogin = 0
  const loginRequest: LoadRequest = {
    method: 'POST',
    path: '/auth/login',
    headers: { 'content-type': 'application/json' },
    setupRequest: (request) => {
      const user = users[nextLogin++ % users.length] as typeof users[number]
      return { ...request, body: JSON.stringify({ email: user.email, password: PASSWORD }) }
    }
  }
  const runOn = (base: Base, server: ServerHandle) => async (budget: Budget): Promise<Measurement> => {
    const c = settings.connections
    switch (base) {
      case 'a': return load(server, [{ method: 'GET', path: '/' }], budget, c)
      case 'b':
      case 'b+': return load(server, bearerRequests('/bench/whoami', tokens), budget, c)
      case "b'": return load(server, bearerRequests('/users/me', tokens), budget, c)
      case 'c': {
        const m = await load(server, [refreshPool.request()], budget, c)
        await refreshPool.recover(server.port)
        return m
      }
      case 'd': return load(server, [loginRequest], budget, c)
      case 'e': throw new Error('e runs on the verifier')
    }
  }
  const list: Scenario[] = []
  for (const base of settings.only) {
    if (base === 'e') {
      const child = verifier as ChildProcess
      list.push({
        id: 'e',
        base,
        variant: false,
        title: TITLES.e,
        server: null,
        run: async budget => {
          const r = await runVerifier(child, settings.connections, 'durationS' in budget
            ? { count: 1_000_000, durationMs: budget.durationS * 1000 }
            : { count: budget.amount, durationMs: 60_000 })
          const seconds = r.elapsedMs / 1000
          return { rps: (r.count - r.failures) / seconds, p50: r.p50, p99: r.p99, ok: r.count - r.failures, non2xx: r.failures, errors: 0, timeouts: 0, seconds, statusCodes: {}, failures: {}, serverCores: r.cpuMs / r.elapsedMs, loaderCores: 0 }
        }
      })
      continue
    }
    const server = base === 'a' ? hello as ServerHandle : servers[base]
    list.push({ id: base, base, variant: false, title: TITLES[base], server, run: runOn(base, server) })
    const compareServer = base === 'b' ? compareServers?.verifyOnly : compareServers?.tollgate
    if (compareServer && COMPARED.includes(base)) {
      list.push({ id: `${base}*`, base, variant: true, title: `${TITLES[base]} [compare]`, server: compareServer, run: runOn(base, compareServer) })
    }
  }
  const allServers = [...new Set([hello, ...Object.values(servers), compareServers?.tollgate ?? null, compareServers?.verifyOnly ?? null].filter((s): s is ServerHandle => s !== null))]

  if (settings.warmupS > 0 && list.length > 0) {
    for (const s of list) {
      await quiesce(allServers)
      await s.run({ durationS: settings.warmupS })
    }
    console.log(`warm-up: ${settings.warmupS} s per scenario`)
  }

  /** One run of a scenario, with the cores every process used meanwhile. */
  async function measureOnce (s: Scenario): Promise<Measurement> {
    const waited = await quiesce(allServers)
    if (waited > 2_000) console.log(`  (waited ${(waited / 1000).toFixed(1)} s for the servers to go idle)`)
    const before = await cpuSnapshot(statsRedis, database)
    const m = await s.run(SMOKE ? { amount: settings.smokeAmount[s.base] } : { durationS: settings.durationS })
    const cpu = cpuBetween(before, await cpuSnapshot(statsRedis, database))
    m.machineCores = cpu.machine
    m.redisCores = cpu.redis
    m.postgresCores = cpu.postgres
    m.stealCores = cpu.steal
    m.otherCores = cpu.machine === null ? null : Math.max(0, cpu.machine - m.serverCores - m.loaderCores - (cpu.redis ?? 0) - cpu.postgres)
    return m
  }

  const rounds: Array<Record<string, Measurement>> = []
  const repeats: Record<string, number> = {}
  let repeatedProblems = 0
  const measuredWindow = { fromUs: nowUs(), toUs: Number.POSITIVE_INFINITY }
  // --only-memory: no scenario, so no round.
  for (let r = 0; r < (list.length > 0 ? settings.rounds : 0); r++) {
    const results: Record<string, Measurement> = {}
    for (const s of list) {
      for (let attempt = 0; ; attempt++) {
        const m = await measureOnce(s)
        const bad = problemsOf(m)
        // Another process or the hypervisor took the CPU this run was measuring: measure it again
        // (not under the profiler, whose sampling threads always show as other processes).
        const repeat = !SMOKE && !settings.profile && disturbed(m) && attempt < MAX_REPEATS
        console.log(`round ${r + 1}/${settings.rounds}  ${s.id.padEnd(3)} ${s.title.padEnd(47)} ${fmt.rps(m.rps).padStart(7)} /s  p50 ${fmt.ms(m.p50).padStart(6)} ms  p99 ${fmt.ms(m.p99).padStart(6)} ms  ${cores(m)}${repeat ? ' → repeated' : ''}${bad ? `  PROBLEMS: ${m.non2xx} non-2xx, ${m.errors} errors, ${m.timeouts} timeouts ${JSON.stringify(m.statusCodes)} ${JSON.stringify(m.failures)}` : ''}`)
        if (!repeat) {
          results[s.id] = m
          break
        }
        repeats[s.id] = (repeats[s.id] ?? 0) + 1
        repeatedProblems += bad
      }
    }
    rounds.push(results)
  }
  measuredWindow.toUs = nowUs()

  const summary: Record<string, Summary> = {}
  for (const s of list) summary[s.id] = summarise(s.title, rounds.map(r => r[s.id] as Measurement), repeats[s.id] ?? 0)
  const get = (id: string) => summary[id]
  const ratio = (x: string, y: string) => {
    const sx = get(x)
    const sy = get(y)
    return sx && sy ? sx.rps / sy.rps : null
  }
  // Issue 13's goals.
  const targets = [
    { name: 'b/a', value: ratio('b', 'a'), goal: '≥ 65 %', pass: (v: number) => v >= 0.65, show: fmt.pct },
    { name: "b'/a", value: ratio("b'", 'a'), goal: '≥ 22 %', pass: (v: number) => v >= 0.22, show: fmt.pct },
    { name: 'c/a', value: ratio('c', 'a'), goal: '≥ 20 %', pass: (v: number) => v >= 0.2, show: fmt.pct },
    { name: 'd/e', value: ratio('d', 'e'), goal: '≥ 90 %', pass: (v: number) => v >= 0.9, show: fmt.pct },
    { name: 'p99(b)', value: get('b')?.p99 ?? null, goal: '< 15 ms', pass: (v: number) => v < 15, show: (v: number) => `${fmt.ms(v)} ms` }
  ].filter(t => t.value !== null).map(t => ({ name: t.name, value: t.value as number, goal: t.goal, met: t.pass(t.value as number), shown: t.show(t.value as number) }))

  if (list.length > 0) {
    console.log(`\nMedians over ${rounds.length} round(s), ${settings.connections} connections (e: ${settings.connections} verifies in flight); server CPU per request (all threads, and the main thread's share); cores used during the runs:`)
    console.log(table([
      ['', 'scenario', 'req/s', 'p50 ms', 'p99 ms', 'server µs/req', 'of which main', 'cores: server', 'main thread', 'autocannon', 'redis', 'pg', 'other', 'steal', 'disturbed', 'repeated', 'non-2xx/errors'],
      ...list.map(s => {
        const x = summary[s.id] as Summary
        return [s.id, s.title, fmt.rps(x.rps), fmt.ms(x.p50), fmt.ms(x.p99), String(x.cpuUsPerRequest), x.mainUsPerRequest === null ? '-' : String(x.mainUsPerRequest), x.cores.server.toFixed(2), x.cores.serverMain === null ? '-' : x.cores.serverMain.toFixed(2), s.base === 'e' ? '-' : x.cores.autocannon.toFixed(2),
          x.cores.redis.toFixed(2), x.cores.postgres.toFixed(2), x.cores.other.toFixed(2), x.cores.steal.toFixed(2), `${x.disturbedRounds}/${rounds.length}`, String(x.repeatedRuns), String(x.problems)]
      })
    ]))
  }
  if (targets.length > 0) {
    console.log(`\nTargets${SMOKE ? ' (not enforced in smoke mode)' : ''}:`)
    console.log(table([['', 'target', 'measured', 'goal', ''], ...targets.map(t => ['', t.name, t.shown, t.goal, t.met ? 'met' : 'MISSED'])]))
  }
  // What the machine allows each scenario (BENCHMARKS.md, "What two cores allow"): requests per
  // second can exceed neither the machine's cores over the CPU a request costs every process
  // measured, nor one core over the server's main-thread CPU per request. Both as a share of the
  // scenario's ceiling, as the goals are: e for d, a for the others.
  const ceilingOf = (s: Scenario) => s.base === 'd' ? 'e' : 'a'
  const limits = list.filter(s => !s.variant && s.base !== 'a' && s.base !== 'e' && get(ceilingOf(s))).map(s => {
    const x = summary[s.id] as Summary
    const ceiling = ceilingOf(s)
    const ceilingRps = (get(ceiling) as Summary).rps
    const machineLimitRps = machine.nproc * 1e6 / x.wholeMachineUsPerRequest
    const mainThreadLimitRps = x.mainUsPerRequest === null ? null : 1e6 / x.mainUsPerRequest
    return {
      scenario: s.id,
      ceiling,
      wholeMachineUsPerRequest: x.wholeMachineUsPerRequest,
      mainUsPerRequest: x.mainUsPerRequest,
      machineLimitRps: round(machineLimitRps, 1),
      mainThreadLimitRps: mainThreadLimitRps === null ? null : round(mainThreadLimitRps, 1),
      machineLimitOfCeiling: round(machineLimitRps / ceilingRps, 3),
      mainThreadLimitOfCeiling: mainThreadLimitRps === null ? null : round(mainThreadLimitRps / ceilingRps, 3),
      measuredOfCeiling: round(x.rps / ceilingRps, 3)
    }
  })
  if (limits.length > 0 && !SMOKE) {
    console.log(`\nLimits set by the machine: req/s ≤ ${machine.nproc} cores ÷ the CPU per request of server + autocannon + Redis + PostgreSQL, and ≤ 1 core ÷ the server's main-thread CPU per request:`)
    console.log(table([
      ['', 'scenario', 'whole machine µs/req', 'main µs/req', 'machine limit /s', 'main-thread limit /s', 'of the ceiling: machine limit', 'main-thread limit', 'measured'],
      ...limits.map(l => ['', `${l.scenario} (÷ ${l.ceiling})`, l.wholeMachineUsPerRequest.toLocaleString('en-US'), l.mainUsPerRequest === null ? '-' : l.mainUsPerRequest.toLocaleString('en-US'), fmt.rps(l.machineLimitRps),
        l.mainThreadLimitRps === null ? '-' : fmt.rps(l.mainThreadLimitRps), fmt.pct(l.machineLimitOfCeiling), l.mainThreadLimitOfCeiling === null ? '-' : fmt.pct(l.mainThreadLimitOfCeiling), fmt.pct(l.measuredOfCeiling)])
    ]))
  }

  const wholeApp = get('b+')
  const bPlusOfA = ratio('b+', 'a')
  // Not a target of the issue: the same route inside the whole app, for comparison with b.
  if (wholeApp) console.log(`b+ (whole app): ${bPlusOfA === null ? '' : `${fmt.pct(bPlusOfA)} of a, `}p99 ${fmt.ms(wholeApp.p99)} ms`)

  // A/B: the per-round ratio of the compared checkout to this one, then the median (paired, so a
  // disturbance hitting both halves of a round cancels out).
  const comparison = list.filter(s => s.variant).map(s => {
    const pairs = rounds.map(r => ({ base: r[s.base] as Measurement, variant: r[s.id] as Measurement }))
    return {
      scenario: s.base,
      baseRps: get(s.base)?.rps ?? Number.NaN,
      variantRps: get(s.id)?.rps ?? Number.NaN,
      rpsRatio: round(median(pairs.map(p => p.variant.rps / p.base.rps)), 3),
      p99Ratio: round(median(pairs.map(p => p.variant.p99 / p.base.p99)), 3),
      serverCpuPerRequestRatio: round(median(pairs.map(p => (p.variant.serverCores / p.variant.rps) / (p.base.serverCores / p.base.rps))), 3),
      perRound: pairs.map(p => round(p.variant.rps / p.base.rps, 3)),
      cpuPerRequestPerRound: pairs.map(p => round((p.variant.serverCores / p.variant.rps) / (p.base.serverCores / p.base.rps), 3))
    }
  })
  if (comparison.length > 0) {
    console.log(`\nCompared with ${compareRoot} (median of per-round ratios, compared / this checkout):`)
    console.log(table([
      ['', 'scenario', 'req/s here', 'req/s compared', 'req/s ratio', 'p99 ratio', 'CPU/request ratio', 'req/s ratio per round', 'CPU/request ratio per round'],
      ...comparison.map(c => ['', c.scenario, fmt.rps(c.baseRps), fmt.rps(c.variantRps), c.rpsRatio.toFixed(3), c.p99Ratio.toFixed(3), c.serverCpuPerRequestRatio.toFixed(3), c.perRound.join(' '), c.cpuPerRequestPerRound.join(' ')])
    ]))
  }
  if (has('c')) console.log(`refresh pool: ${refreshPool.size} sessions; recovered after runs: ${refreshPool.recovered} (reuse interval), logged in again: ${refreshPool.relogged}`)

  console.log('\nMemory:')
  if (settings.memory) console.log('whole-app server (b+), fresh, under --expose-gc; after each checkpoint of protected requests (RSS after a full GC):')
  const rss = await rssPhase(config, tokens, servers['b+'])
  if (rss.measured) {
    const last = rss.samples[rss.samples.length - 1] as RssSample
    console.log(`RSS after a full GC, after ${rss.at10k.requests.toLocaleString('en-US')} protected requests: ${fmt.mib(rssOf(rss.at10k))}; after ${rss.at100k.requests.toLocaleString('en-US')}: ${fmt.mib(rssOf(rss.at100k))} (${rss.rssGrowthPercent >= 0 ? '+' : ''}${rss.rssGrowthPercent} %: ${rss.withinTenPercent ? 'within' : 'NOT within'} 10 %)` +
      (last === rss.at100k ? '' : `; after ${last.requests.toLocaleString('en-US')}: ${fmt.mib(rssOf(last))} (${rss.rssGrowthToLastPercent >= 0 ? '+' : ''}${rss.rssGrowthToLastPercent} % from 10k)`))
    console.log(`  RSS right after the load, before that GC: ${fmt.mib(rss.at10k.rss)} → ${fmt.mib(rss.at100k.rss)}`)
    console.log(`  heap used after a full GC: ${fmt.mib(rss.at10k.heapUsedAfterGc ?? Number.NaN)} → ${fmt.mib(rss.at100k.heapUsedAfterGc ?? Number.NaN)}`)
  } else {
    console.log(`whole-app server (b+) RSS: ${rss.afterLoad ? `${fmt.mib(rss.afterLoad.rss)} after the load ` : ''}(${rss.skipped})`)
  }
  const redisMemory = await redisPerSession(servers.d.port, prefix)
  for (const r of redisMemory) {
    const kinds = Object.entries(r.byKey).map(([k, v]) => `${k}: ${v.count}× ${v.type}/${v.encoding} ${v.bytes} B`).join(', ')
    console.log(`Redis, one user with ${r.sessions} session(s): ${r.totalBytes} B in ${r.keys} keys = ${r.bytesPerSession} B per session  (${kinds})`)
  }
  const memoryProblems = rss.measured ? rss.requests.non2xx + rss.requests.errors : 0

  // Servers exit normally, so --cpu-prof writes the profiles.
  // Profiles of the servers that served a selected scenario (not of one used for setup only).
  const pids = new Map(list.filter(s => s.server !== null).map(s => [(s.server as ServerHandle).name, (s.server as ServerHandle).child.pid]))
  await stopAll()
  let profiles: Record<string, ProfileSummary> | undefined
  if (settings.profile) {
    profiles = {}
    for (const name of pids.keys()) {
      try {
        const file = await collectProfile(RESULTS_DIR, name, pids.get(name))
        // Only the measured rounds: not boot, setup or warm-up.
        profiles[name] = await summariseProfile(file, 15, measuredWindow)
        const served = list.filter(x => x.server?.name === name).reduce((t, x) => t + rounds.reduce((u, r) => u + (r[x.id]?.ok ?? 0), 0), 0)
        console.log(`\n${formatProfile(`profile of server ${name} during the rounds (${file})`, profiles[name], served)}`)
      } catch (err) {
        console.error(`profile of server ${name}: ${(err as Error).message}`)
      }
    }
    for (const f of await readdir(RESULTS_DIR)) if (f.startsWith('profile-')) await rm(join(RESULTS_DIR, f), { recursive: true, force: true })
  }

  const totalProblems = list.reduce((t, s) => t + (summary[s.id] as Summary).problems, 0) + memoryProblems + repeatedProblems
  const report = {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine,
    settings,
    scenarios: summary,
    targets: targets.map(t => ({ name: t.name, value: round(t.value, 4), goal: t.goal, met: t.met })),
    comparison: comparison.length > 0 ? comparison : undefined,
    rounds: rounds.map(r => Object.fromEntries(Object.entries(r).map(([id, m]) => [id, roundForJson(m)]))),
    limits,
    refreshPool: has('c') ? { sessions: refreshPool.size, recovered: refreshPool.recovered, loggedInAgain: refreshPool.relogged } : undefined,
    memory: { serverB: rss, redis: redisMemory },
    profiles,
    problems: totalProblems,
    elapsedSeconds: round((Date.now() - started) / 1000, 1)
  }
  const out = join(RESULTS_DIR, 'latest.json')
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`\nwrote ${out} (${report.elapsedSeconds} s)`)

  if (totalProblems > 0) {
    console.error(`FAILED: ${totalProblems} errors or non-2xx answers`)
    return 1
  }
  if (!SMOKE && flags.enforce === true && targets.some(t => !t.met)) {
    console.error(`targets missed: ${targets.filter(t => !t.met).map(t => t.name).join(', ')}`)
    return 3
  }
  return 0
}

let code = 1
try {
  code = await main()
} catch (err) {
  console.error('benchmark failed:', err instanceof Error ? err.stack ?? err.message : err)
  code = 1
} finally {
  await cleanup()
}
process.exit(code)

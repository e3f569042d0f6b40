/**
 * The login ceiling, run by bench/run.ts in its own process: raw argon2id verifies (@node-rs/argon2,
 * no queue or limiter in front) with the parameters of src/password.ts, `concurrency` in flight.
 */
import { hash, verify } from '@node-rs/argon2'
import * as password from '../src/password.js'
import type { FromVerifier, ToVerifier, VerifyRun } from './lib/protocol.js'
import { LatencyRecorder } from './lib/stats.js'

const PASSWORD = 'correct horse battery staple'
const MAX_VERIFIES = 1_000_000
// src/password.ts's values (argon2id, m=19 MiB, t=2, p=1), used if that module does not export its own.
const FALLBACK_OPTIONS = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const
const OPTIONS = (password as unknown as { ARGON2_OPTIONS?: typeof FALLBACK_OPTIONS }).ARGON2_OPTIONS ?? FALLBACK_OPTIONS

function send (message: FromVerifier): void {
  if (process.send && process.connected) process.send(message)
}

async function run (passwordHash: string, { concurrency, count, durationMs }: VerifyRun) {
  const latencies = new LatencyRecorder(Math.min(count, MAX_VERIFIES))
  const start = performance.now()
  const cpuStart = process.cpuUsage()
  const deadline = start + durationMs
  let started = 0
  let failures = 0
  async function lane () {
    while (started < count && started < MAX_VERIFIES && performance.now() < deadline) {
      started++
      const t0 = performance.now()
      const ok = await verify(passwordHash, PASSWORD, OPTIONS)
      latencies.record(performance.now() - t0)
      if (!ok) failures++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const elapsedMs = performance.now() - start
  const cpu = process.cpuUsage(cpuStart)
  return { count: latencies.count, failures, elapsedMs, cpuMs: (cpu.user + cpu.system) / 1000, ...latencies.percentiles() }
}

process.on('disconnect', () => process.exit(0))
const hashReady = hash(PASSWORD, OPTIONS)
process.on('message', (message: ToVerifier) => {
  (async () => {
    try {
      if (message.type === 'close') process.exit(0)
      const result = await run(await hashReady, message)
      send({ type: 'result', ...result })
    } catch (err) {
      send({ type: 'fatal', message: err instanceof Error ? err.message : String(err) })
      process.exit(1)
    }
  })().catch(() => process.exit(1))
})
hashReady.then(passwordHash => {
  // The encoded parameters must be the service's: $argon2id$v=19$m=19456,t=2,p=1$…
  if (!passwordHash.startsWith(`$argon2id$v=19$m=${OPTIONS.memoryCost},t=${OPTIONS.timeCost},p=${OPTIONS.parallelism}$`)) {
    throw new Error(`unexpected argon2 parameters: ${passwordHash.split('$').slice(0, 4).join('$')}`)
  }
  send({ type: 'ready' })
}).catch((err: unknown) => {
  send({ type: 'fatal', message: String(err) })
  process.exit(1)
})

import type { ChildProcess } from 'node:child_process'
import { readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { ConfigInput } from '../../src/config.js'
import { sendTo, startChild, waitFor } from './children.js'
import type { FromServer, FromVerifier, MemorySample, ServerMode, VerifyResult } from './protocol.js'

const BOOT_TIMEOUT_MS = 60_000

export interface ServerHandle {
  child: ChildProcess
  port: number
  name: string
  /** Share of one core the server uses when idle (a profiler's sampling costs some). */
  idleCores: number
}

export interface StartOptions {
  name: string
  mode: ServerMode
  /** The checkout whose bench/server.ts (and so src/, plugins/, routes/) runs. */
  root: string
  config?: ConfigInput
  nodeFlags?: string[]
  /** Write a CPU profile of the main thread into `<dir>/profile-<name>/`. */
  profileDir?: string
}

export async function startServer ({ name, mode, root, config, nodeFlags = [], profileDir }: StartOptions): Promise<ServerHandle> {
  const flags = [...nodeFlags]
  // One directory per server: tsx's loader thread writes a profile too, and must not overwrite
  // the main thread's (see collectProfile).
  if (profileDir) flags.push('--cpu-prof', `--cpu-prof-dir=${join(profileDir, `profile-${name}`)}`)
  const child = startChild(join(root, 'bench', 'server.ts'), { cwd: root, nodeFlags: flags })
  const listening = waitFor(child, m => (m as FromServer).type === 'listening' ? (m as { port: number }).port : undefined, BOOT_TIMEOUT_MS, `server ${name} to listen`)
  sendTo(child, { type: 'start', mode, config })
  const server: ServerHandle = { child, port: await listening, name, idleCores: 0 }
  const before = await serverCpuMicros(server)
  const t0 = performance.now()
  await new Promise(resolve => setTimeout(resolve, 500))
  server.idleCores = (await serverCpuMicros(server) - before) / 1000 / (performance.now() - t0)
  return server
}

/** CPU time of the server process so far (all threads), µs. */
export async function serverCpuMicros (server: ServerHandle): Promise<number> {
  return (await serverCpu(server)).micros
}

/** CPU time so far of the whole server process and of its main (event-loop) thread, µs. */
export async function serverCpu (server: ServerHandle): Promise<{ micros: number, mainMicros: number | null }> {
  const reply = waitFor(server.child, m => (m as FromServer).type === 'cpu' ? m as { micros: number, mainMicros: number | null } : undefined, 10_000, `cpu of ${server.name}`)
  sendTo(server.child, { type: 'cpu' })
  const { micros, mainMicros } = await reply
  return { micros, mainMicros }
}

export async function serverMemory (server: ServerHandle): Promise<MemorySample> {
  const reply = waitFor(server.child, m => (m as FromServer).type === 'memory' ? m as MemorySample : undefined, 30_000, `memory of ${server.name}`)
  sendTo(server.child, { type: 'memory' })
  const { type: _type, ...sample } = await reply as MemorySample & { type: 'memory' }
  return sample
}

/**
 * Waits (at most 20 s) until every server is back to its idle CPU use (+5 % of a core): work left
 * over from the previous scenario (logins still queued for argon2 after their connections closed)
 * must not overlap the next. Returns the ms waited.
 */
export async function quiesce (servers: ServerHandle[]): Promise<number> {
  const start = Date.now()
  const unique = [...new Set(servers)]
  for (let i = 0; i < 80; i++) {
    const before = await Promise.all(unique.map(serverCpuMicros))
    const t0 = performance.now()
    await new Promise(resolve => setTimeout(resolve, 250))
    const after = await Promise.all(unique.map(serverCpuMicros))
    const window = (performance.now() - t0) * 1000
    if (after.every((micros, j) => (micros - (before[j] as number)) / window < (unique[j] as ServerHandle).idleCores + 0.05)) break
  }
  return Date.now() - start
}

/** Moves the main thread's profile (thread id 0 in Node's file name) to `<dir>/server-<name>.cpuprofile`. */
export async function collectProfile (profileDir: string, name: string, pid: number | undefined): Promise<string> {
  const dir = join(profileDir, `profile-${name}`)
  const files = await readdir(dir)
  const main = files.find(f => pid !== undefined && f.includes(`.${pid}.0.`)) ?? files.find(f => /\.\d+\.0\.\d+\.cpuprofile$/.test(f))
  if (!main) throw new Error(`no main-thread profile in ${dir}: ${files.join(', ')}`)
  const target = join(profileDir, `server-${name}.cpuprofile`)
  await rename(join(dir, main), target)
  await rm(dir, { recursive: true, force: true })
  return target
}

export async function startVerifier (root: string): Promise<ChildProcess> {
  const child = startChild(join(root, 'bench', 'argon2-worker.ts'), { cwd: root })
  await waitFor(child, m => (m as FromVerifier).type === 'ready' ? true : undefined, BOOT_TIMEOUT_MS, 'argon2 verifier')
  return child
}

export async function runVerifier (child: ChildProcess, concurrency: number, budget: { count: number, durationMs: number }): Promise<VerifyResult> {
  const reply = waitFor(child, m => (m as FromVerifier).type === 'result' ? m as VerifyResult : undefined, budget.durationMs + 60_000, 'argon2 run')
  sendTo(child, { type: 'run', concurrency, ...budget })
  return reply
}

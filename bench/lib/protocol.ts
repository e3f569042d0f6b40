import type { ConfigInput } from '../../src/config.js'

/** Messages between the harness and its children (Node IPC, JSON-serialised). */
export type ServerMode = 'hello' | 'verify-only' | 'tollgate'

export type ToServer =
  | { type: 'start', mode: ServerMode, config?: ConfigInput }
  | { type: 'memory' }
  | { type: 'cpu' }
  | { type: 'close' }

export interface MemorySample {
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  /** heapUsed after a full GC, when the child runs with --expose-gc. */
  heapUsedAfterGc: number | null
  /** RSS after that GC: without the garbage of the last requests, so the better leak check. */
  rssAfterGc: number | null
}

export type FromServer =
  | { type: 'listening', port: number }
  | ({ type: 'memory' } & MemorySample)
  | { type: 'cpu', micros: number, mainMicros: number | null }
  | { type: 'fatal', message: string }

export interface VerifyRun {
  type: 'run'
  concurrency: number
  /** Run until this many verifies finished, or until durationMs passed, whichever comes first. */
  count: number
  durationMs: number
}

export type ToVerifier = VerifyRun | { type: 'close' }

export interface VerifyResult {
  count: number
  failures: number
  elapsedMs: number
  p50: number
  p99: number
  /** CPU time of the verifier process during the run (all threads), ms. */
  cpuMs: number
}

export type FromVerifier =
  | { type: 'ready' }
  | ({ type: 'result' } & VerifyResult)
  | { type: 'fatal', message: string }

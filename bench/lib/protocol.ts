import type { ConfigInput } from '../../src/config.js'

/** Messages between the harness and its children (Node IPC, JSON-serialised). */
export type ServerMode = 'hello' | 'verify-only' | 'tollgate'

export type ToServer =
  | { type: 'start', mode: ServerMode, config?: ConfigInput }
  | { type: 'memory' }
  | { type: 'cpu' }
  | { type: 'close' }

export interface MemorySample {
  /** process.memoryUsage() right after the load, before any GC. */
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  /** Of `external`: ArrayBuffers and Buffers (Node's own allocations outside the V8 heap). */
  arrayBuffers: number
  /** heapUsed after a full GC, when the child runs with --expose-gc. */
  heapUsedAfterGc: number | null
  /**
   * RSS after that GC, once it stopped moving: without the garbage of the last requests, so the
   * better leak check. V8 unmaps the pages the GC emptied on a background thread, some 10–150 ms later.
   */
  rssAfterGc: number | null
  /** RSS read at once after the GC (the figure before issue 13's investigation): 10–50 MiB too high at random. */
  rssRightAfterGc: number | null
  /** How long RSS took to settle after the GC, ms (the server waits for 300 ms without change, at most 5 s). */
  settleMs: number | null
  /** The other fields after that GC: V8's committed heap, external memory, ArrayBuffers. */
  heapTotalAfterGc: number | null
  externalAfterGc: number | null
  arrayBuffersAfterGc: number | null
  /**
   * After that GC, from /proc/self/status (null off Linux): resident anonymous memory (malloc'd and
   * mmap'd: V8's heap, native allocations) and file-backed pages (node's binary, shared libraries).
   */
  rssAnonAfterGc: number | null
  rssFileAfterGc: number | null
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

import { fork, type ChildProcess } from 'node:child_process'

/** Every child the harness started and that has not exited yet. */
const live = new Set<ChildProcess>()

export interface ChildOptions {
  /** Node flags after `--import tsx` (e.g. --cpu-prof, --expose-gc). */
  nodeFlags?: string[]
  cwd: string
}

/** Forks a TypeScript module with an IPC channel; it is SIGKILLed at exit if still alive. */
export function startChild (file: string, { nodeFlags = [], cwd }: ChildOptions): ChildProcess {
  const child = fork(file, [], {
    cwd,
    execArgv: ['--import', 'tsx', ...nodeFlags],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' }
  })
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

/** The first message from `child` that `accept` returns non-undefined for; rejects on a `fatal` message, exit or timeout. */
export function waitFor<T> (child: ChildProcess, accept: (message: unknown) => T | undefined, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs)
    function onMessage (message: unknown) {
      const fatal = message as { type?: string, message?: string }
      if (fatal?.type === 'fatal') return done(new Error(`${what}: child failed: ${fatal.message ?? ''}`))
      const value = accept(message)
      if (value !== undefined) done(undefined, value)
    }
    function onExit (code: number | null, signal: string | null) {
      done(new Error(`${what}: child exited (code ${code}, signal ${signal})`))
    }
    function done (err: Error | undefined, value?: T) {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (err) reject(err)
      else resolve(value as T)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

export function sendTo (child: ChildProcess, message: unknown): void {
  if (!child.connected) throw new Error('child is not connected')
  child.send(message as object)
}

/** Asks a child to close (it exits normally, writing any --cpu-prof profile); SIGKILL after `graceMs`. */
export async function stopChild (child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  try {
    if (child.connected) child.send({ type: 'close' })
  } catch { /* the kill below covers it */ }
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

export async function stopAll (graceMs?: number): Promise<void> {
  await Promise.all([...live].map(child => stopChild(child, graceMs)))
}

/** Synchronous last resort, for process exit. */
export function killAll (): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL')
    } catch { /* already gone */ }
  }
}

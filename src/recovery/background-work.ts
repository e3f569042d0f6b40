import { logSafeError } from '../log-safe-error.js'

/** A pino-like logger. */
interface ErrorLog {
  error (details: object, message: string): void
}

/**
 * Work that runs after the request that started it has been answered, so that the answer neither
 * waits for it nor depends on it. A failure is logged, never thrown. `idle` resolves when all of it
 * has finished (shutdown waits for it before the database closes; tests wait for it too).
 */
export function createBackgroundWork (log: ErrorLog) {
  const running = new Set<Promise<void>>()

  return {
    run (label: string, work: () => Promise<void>): void {
      const task: Promise<void> = work()
        .catch((err: unknown) => log.error({ task: label, err: logSafeError(err) }, `background work failed: ${label}`))
        .finally(() => running.delete(task))
      running.add(task)
    },

    async idle (): Promise<void> {
      while (running.size > 0) await Promise.allSettled([...running])
    }
  }
}

export type BackgroundWork = ReturnType<typeof createBackgroundWork>

import { hash, verify } from '@node-rs/argon2'
import { ServiceBusyError } from './errors.js'

// OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
// algorithm 2 is Algorithm.Argon2id (a const enum, not importable under verbatimModuleSyntax).
export const ARGON2_OPTIONS = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const

export interface PasswordHasherOptions {
  /** argon2 operations running at once (each takes 19 MiB and one libuv thread). */
  concurrency: number
  /** Operations allowed to wait; one more is refused with 503 rather than queued without bound. */
  queue: number
}

/**
 * argon2id hashing with bounded work: a flood of logins cannot pile up memory and latency without
 * limit. An unknown email is checked against a dummy hash, so it costs one full verify too.
 */
export function createPasswordHasher ({ concurrency, queue }: PasswordHasherOptions) {
  let running = 0
  const waiting: Array<() => void> = []

  async function bounded<T> (work: () => Promise<T>): Promise<T> {
    if (running >= concurrency) {
      if (waiting.length >= queue) throw new ServiceBusyError()
      await new Promise<void>(resolve => waiting.push(resolve))
    } else {
      running++
    }
    try {
      return await work()
    } finally {
      // Hand the slot straight to the next waiter, or free it.
      const next = waiting.shift()
      if (next) next()
      else running--
    }
  }

  const dummyHash = hash('tollgate-dummy-password-for-timing', ARGON2_OPTIONS)

  return {
    hash: (password: string) => bounded(() => hash(password, ARGON2_OPTIONS)),
    verify: (passwordHash: string, password: string) => bounded(() => verify(passwordHash, password, ARGON2_OPTIONS)),
    /** Same cost and answer time as a wrong password, for a user that does not exist. */
    verifyAgainstNothing: async (password: string) => {
      await bounded(async () => verify(await dummyHash, password, ARGON2_OPTIONS))
      return false as const
    }
  }
}

export type PasswordHasher = ReturnType<typeof createPasswordHasher>

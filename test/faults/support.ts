// What a client sees of a backing-service outage: the masked 503 with Retry-After (answered fast),
// and a retry that works once the service answers again. Shared by the fault tests and the outage
// tests of the routes.
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'

type Response = Awaited<ReturnType<FastifyInstance['inject']>>

export const UNAVAILABLE = { statusCode: 503, code: 'SERVICE_UNAVAILABLE', error: 'Service Unavailable', message: 'A backing service is unavailable; retry shortly' }
/** The fail-fast bound for a request during a Redis outage. */
export const FAIL_FAST_MS = 2000
export const RECOVERY_ATTEMPTS = 40
export const RECOVERY_PAUSE_MS = 250

/** Retries `send` until it answers `status`: bounded in attempts (and each attempt by the Redis timeouts). */
export async function eventually (name: string, status: number, send: () => Promise<Response>): Promise<Response> {
  let last: Response | undefined
  for (let attempt = 0; attempt < RECOVERY_ATTEMPTS; attempt++) {
    last = await send()
    if (last.statusCode === status) return last
    await sleep(RECOVERY_PAUSE_MS)
  }
  throw new Error(`${name}: still ${last?.statusCode} after ${RECOVERY_ATTEMPTS} attempts`)
}

/** A closed failure: never 200, but 503 with Retry-After and the masked body. */
export function expectUnavailable (t: Test, res: Response, step: string) {
  t.not(res.statusCode, 200, `${step}: never 200`)
  t.equal(res.statusCode, 503, `${step}: 503`)
  t.match(res.headers['retry-after'], /^[1-9][0-9]*$/, `${step}: Retry-After in seconds`)
  t.strictSame(res.json(), UNAVAILABLE, `${step}: the masked 503 body`)
}

/** Sends one request during an outage and asserts a closed failure, answered within FAIL_FAST_MS. */
export async function expectUnavailableFast (t: Test, step: string, send: () => Promise<Response>, boundMs = FAIL_FAST_MS) {
  const started = performance.now()
  const res = await send()
  const elapsed = performance.now() - started
  expectUnavailable(t, res, step)
  t.ok(elapsed < boundMs, `${step}: answered in ${Math.round(elapsed)} ms (< ${boundMs} ms)`)
}

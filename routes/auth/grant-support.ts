import type { FastifyRequest } from 'fastify'
import type { Client } from '../../src/sessions/session-service.js'

/** RFC 6749 §5.1: a token response is never cached. */
export const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' }

/** Who asks, as the sessions list shows it. */
export function clientOf (request: FastifyRequest): Client {
  return { userAgent: request.headers['user-agent']?.slice(0, 256) ?? null, ip: request.ip ?? null }
}

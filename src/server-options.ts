import type { FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Config } from './config.js'
import { handleError } from '../plugins/errors.js'

/** Never logged: credentials in headers and every token or password field of a body or reply. */
const SECRET_FIELDS = ['password', 'current_password', 'new_password', 'access_token', 'refresh_token']
const SECRET_HEADERS = ['authorization', 'cookie']
export const REDACTED_PATHS = [
  'res.headers["set-cookie"]',
  // Headers, wherever a log call puts them.
  ...SECRET_HEADERS.flatMap(h => [`req.headers.${h}`, `headers.${h}`, `*.headers.${h}`]),
  // Token and password fields at the top level, in a body, or one level deeper.
  ...SECRET_FIELDS.flatMap(f => [f, `*.${f}`, `*.*.${f}`])
]

export function parseTrustProxy (value: string): boolean | number | string {
  if (value === '') return false
  if (value === 'true') return true
  if (/^\d+$/.test(value)) return Number(value)
  return value
}

/** The Fastify options of the server, shared with the tests so both validate alike. */
export function serverOptions (config: Config, overrides: FastifyServerOptions = {}, logStream?: DestinationStream): FastifyServerOptions {
  return {
    logger: { level: config.LOG_LEVEL, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, ...(logStream && { stream: logStream }) },
    // A hop count is valid for proxy-addr, though Fastify's type omits it.
    trustProxy: parseTrustProxy(config.TRUST_PROXY) as boolean | string,
    // Auth bodies are small; anything larger is a 413 before parsing.
    bodyLimit: 16 * 1024,
    requestTimeout: 30_000,
    return503OnClosing: true,
    // The router answers bad URLs and over-long parameters before any plugin runs: same error shape.
    frameworkErrors: handleError,
    // The embedded default compiles PostgreSQL (WASM) and migrates at boot: slow on a busy machine.
    pluginTimeout: 120_000,
    ajv: {
      customOptions: {
        // A number where a string is expected is a 400, not a silently converted value.
        coerceTypes: false,
        // Unknown body fields are rejected (additionalProperties: false), never silently dropped.
        removeAdditional: false,
        allErrors: false
      }
    },
    ...overrides
  }
}

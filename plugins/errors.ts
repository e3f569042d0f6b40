import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { DependencyError, OAuthError, RateLimitedError, TollgateError, challengeOf, isMalformedJson, malformedJsonMessage } from '../src/errors.js'
import { logSafeError } from '../src/log-safe-error.js'

// Codes for the 4xx errors Fastify and its plugins raise, so no library code reaches a client.
const CODE_BY_STATUS: Record<number, string> = {
  400: 'INVALID_REQUEST',
  401: 'INVALID_TOKEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED'
}
/** How long a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = '5'

function statusText (status: number): string {
  // Every status a route, Fastify or its router can set (414 from maxParamLength, 431…), by its name.
  return STATUS_CODES[status] ?? (status >= 500 ? 'Internal Server Error' : 'Bad Request')
}

/**
 * The one error handler: the Fastify error shape, 5xx masked, WWW-Authenticate on 401 (RFC 6750 §3).
 * Its signature is also Fastify's `frameworkErrors` server option, which the router's own URL errors
 * (FST_ERR_BAD_URL, FST_ERR_MAX_PARAM_LENGTH) need: they are answered before any plugin runs.
 */
export function handleError (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (error instanceof DependencyError) {
    // Cleaned: a database error's message holds the SQL with its values (addresses, hashes).
    request.log.error({ err: logSafeError(error.cause), dependency: error.dependency }, 'dependency unavailable')
    return reply.code(503).header('retry-after', RETRY_AFTER_SECONDS)
      .send({ statusCode: 503, code: 'SERVICE_UNAVAILABLE', error: statusText(503), message: 'A backing service is unavailable; retry shortly' })
  }
  if (error instanceof OAuthError) {
    if (error.statusCode === 401) reply.header('www-authenticate', challengeOf(error))
    return reply.code(error.statusCode).headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
      .send({ error: error.errorCode, error_description: error.description })
  }
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  if (status === 503 && (error as unknown) instanceof TollgateError) {
    // Tollgate's own 503 (SERVICE_BUSY: too many password checks at once) is load shedding, not a
    // fault: its code and message are the client's, and its log line a warning.
    request.log.warn({ code: error.code }, 'request refused: busy')
    return reply.code(503).header('retry-after', RETRY_AFTER_SECONDS)
      .send({ statusCode: 503, code: error.code, error: statusText(503), message: error.message })
  }
  if (status >= 500) {
    request.log.error({ err: logSafeError(error) }, 'request failed')
    if (status === 503) reply.header('retry-after', RETRY_AFTER_SECONDS)
    return reply.code(status).send({ statusCode: status, code: status === 503 ? 'SERVICE_UNAVAILABLE' : 'INTERNAL_ERROR', error: statusText(status), message: 'Something went wrong' })
  }
  if (status === 401) reply.header('www-authenticate', challengeOf(error))
  if (error instanceof RateLimitedError && error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds))
  const own = (error as unknown) instanceof TollgateError
  const code = own ? error.code : CODE_BY_STATUS[status] ?? 'INVALID_REQUEST'
  // Validation messages name the field and rule ("body/email must match format"), which helps clients.
  const message = own || error.validation ? error.message : isMalformedJson(error) ? malformedJsonMessage(error) : statusText(status)
  return reply.code(status).send({ statusCode: status, code, error: statusText(status), message })
}

const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const

/**
 * The standalone server's answer when no route matches, in the same shape: 405 with `Allow` when
 * the URL has routes for other methods (RFC 9110 §15.5.6), else 404. Only unmatched requests pay
 * for the lookups.
 */
export function handleNotFound (request: FastifyRequest, reply: FastifyReply) {
  const [path = ''] = request.url.split('?', 1)
  const allowed = ROUTE_METHODS.filter(method => request.server.findRoute({ method, url: path }) !== null)
  if (allowed.length > 0) {
    return reply.code(405).header('allow', allowed.join(', ')).send({
      statusCode: 405, code: 'METHOD_NOT_ALLOWED', error: 'Method Not Allowed', message: `Route ${request.method} ${path} not found; ${path} allows ${allowed.join(', ')}`
    })
  }
  return reply.code(404).send({ statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: `Route ${request.method} ${path} not found` })
}

/** Tollgate's error handler for the context it is registered in: Tollgate's routes, never a host's. */
export default fp(async function errorsPlugin (fastify) {
  fastify.setErrorHandler(handleError)
}, { name: 'tollgate-errors', fastify: '5.x' })

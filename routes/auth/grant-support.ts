import formbody from '@fastify/formbody'
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import { OAuthError, TollgateError, isMalformedJson, malformedJsonMessage } from '../../src/errors.js'
import type { Client } from '../../src/sessions/session-service.js'

/** RFC 6749 §5.1: a token response is never cached. */
export const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' }

export const FORM = 'application/x-www-form-urlencoded'

/** Who asks, as the sessions list shows it. */
export function clientOf (request: FastifyRequest): Client {
  return { userAgent: request.headers['user-agent']?.slice(0, 256) ?? null, ip: request.ip ?? null }
}

/** A POST without a body is a body with no fields (for routes whose body is optional). */
export async function absentBodyAsEmpty (request: FastifyRequest) {
  request.body ??= {}
}

/**
 * The OAuth endpoints take form bodies (RFC 6749 §6, RFC 7009 §2.1, RFC 7662 §2.1): only their own
 * scope parses them, beside JSON. Tollgate's scope holds none of the host's parsers
 * (plugins/json-bodies.ts); the removal keeps the parser Tollgate's in any other scope too.
 */
export async function acceptFormBodies (scope: FastifyInstance) {
  if (scope.hasContentTypeParser(FORM)) scope.removeContentTypeParser(FORM)
  await scope.register(formbody)
}

/**
 * Route error handler of the OAuth endpoints: a malformed request (schema, content type, body) is
 * RFC 6749 §5.2's invalid_request; Tollgate's own errors (401 of client authentication, 429) stay
 * as they are. What it throws goes on to Tollgate's error handler.
 */
export function oauthRequestErrors (error: FastifyError): never {
  const status = error.statusCode ?? 500
  const own = (error as unknown) instanceof OAuthError || (error as unknown) instanceof TollgateError
  if (error.validation || (status >= 400 && status < 500 && !own)) {
    const description = error.validation ? error.message : isMalformedJson(error) ? malformedJsonMessage(error) : 'The request body is not a valid token request'
    throw new OAuthError('invalid_request', description)
  }
  throw error
}

import formbody from '@fastify/formbody'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError } from 'fastify'
import { OAuthError } from '../../src/errors.js'
import { OAuthErrorSchema, PUBLIC_SECURITY, TokenResponseSchema, errorResponse } from '../../src/schemas.js'
import { NO_STORE, clientOf } from './grant-support.js'

const FORM = 'application/x-www-form-urlencoded'

/** The token endpoint's refresh grant (RFC 6749 §6), in its own scope: only it accepts form bodies. */
const refreshRoute: FastifyPluginAsyncTypebox = async function refreshRoute (fastify) {
  const { sessions, rateLimits } = fastify.tollgate

  // Tollgate's own form parser even when the host registered one: same parsing under any host.
  if (fastify.hasContentTypeParser(FORM)) fastify.removeContentTypeParser(FORM)
  await fastify.register(formbody)

  fastify.post('/refresh', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Rotate a refresh token (RFC 6749 §6)',
      description: 'The presented refresh token is spent and a new pair is returned. Presenting a spent token again revokes its session, except within the reuse interval, where the same successor is returned.',
      security: PUBLIC_SECURITY,
      consumes: ['application/json', FORM],
      body: Type.Object({
        refresh_token: Type.String({ minLength: 1, maxLength: 4096 }),
        grant_type: Type.Optional(Type.Literal('refresh_token'))
      }),
      response: {
        200: Type.Ref(TokenResponseSchema),
        400: Type.Ref(OAuthErrorSchema, { description: 'invalid_grant or invalid_request (RFC 6749 §5.2)' }),
        429: errorResponse('Too many refreshes from this address; see Retry-After'),
        503: errorResponse('A backing service is unavailable')
      }
    },
    // Malformed requests (schema, content type, body) are invalid_request; 429 stays a 429. What
    // this throws goes on to Tollgate's error handler.
    errorHandler: function refreshErrors (error: FastifyError) {
      const status = error.statusCode ?? 500
      if (error.validation || (status >= 400 && status < 500 && status !== 429 && !(error instanceof OAuthError))) {
        throw new OAuthError('invalid_request', error.validation ? error.message : 'The request body is not a valid token request')
      }
      throw error
    }
  }, async function refresh (request, reply) {
    const tokens = await sessions.refresh(request.body.refresh_token, clientOf(request))
    reply.headers(NO_STORE)
    return tokens
  })
}

export default refreshRoute

import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PUBLIC_SECURITY, oauthErrorResponse, rateLimited, tokenResponse, unavailable } from '../../src/schemas.js'
import { FORM, NO_STORE, acceptFormBodies, clientOf, oauthRequestErrors } from './grant-support.js'

/** The token endpoint's refresh grant (RFC 6749 §6), in its own scope: only it accepts form bodies. */
const refreshRoute: FastifyPluginAsyncTypebox = async function refreshRoute (fastify) {
  const { sessions, rateLimits } = fastify.tollgate
  await acceptFormBodies(fastify)

  fastify.post('/refresh', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Rotate a refresh token (RFC 6749 §6)',
      description: 'The presented refresh token is spent and a new pair is returned; keep only the newest refresh token. Presenting a spent token again revokes its session, except within the reuse interval, where the same successor is returned.',
      operationId: 'refreshToken',
      security: PUBLIC_SECURITY,
      consumes: ['application/json', FORM],
      body: Type.Object({
        refresh_token: Type.String({ minLength: 1, maxLength: 4096 }),
        grant_type: Type.Optional(Type.Literal('refresh_token'))
      }),
      response: {
        200: tokenResponse('The next access and refresh tokens; the presented refresh token is spent'),
        // Also the answer to a body over 16 KiB or an unsupported content type: no 413 or 415 here.
        400: oauthErrorResponse('invalid_grant: the refresh token is invalid, expired, spent or revoked; log in again. invalid_request: a malformed request, also a body over 16 KiB or an unsupported Content-Type (RFC 6749 §5.2)'),
        429: rateLimited('Too many refreshes from this address; retry after Retry-After'),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
      }
    },
    errorHandler: oauthRequestErrors
  }, async function refresh (request, reply) {
    const tokens = await sessions.refresh(request.body.refresh_token, clientOf(request))
    reply.headers(NO_STORE)
    return tokens
  })
}

export default refreshRoute

import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PUBLIC_SECURITY, documented, oauthErrorResponse, rateLimited, unavailable } from '../../src/schemas.js'
import { FORM, acceptFormBodies, oauthRequestErrors } from './grant-support.js'

/** RFC 7009 token revocation, for public clients: no client authentication. */
const revokeRoute: FastifyPluginAsyncTypebox = async function revokeRoute (fastify) {
  const { sessions, rateLimits } = fastify.tollgate
  await acceptFormBodies(fastify)

  fastify.post('/revoke', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Revoke a refresh or access token (RFC 7009)',
      operationId: 'revokeToken',
      description: 'A refresh token ends its session. An access token ends its session too, and is itself refused from then on. ' +
        'The answer is 200 whether or not the token was valid, so it reveals nothing about the token (RFC 7009 §2.2).',
      security: PUBLIC_SECURITY,
      consumes: [FORM, 'application/json'],
      body: Type.Object({
        token: Type.String({ minLength: 1, maxLength: 4096, description: 'The token to revoke' }),
        token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'access_token or refresh_token: which kind is tried first; any other value is ignored' }))
      }),
      response: {
        200: documented(Type.Object({}, { additionalProperties: false }), 'Revoked, or there was nothing to revoke: an empty object either way'),
        400: oauthErrorResponse('invalid_request: no token, or a malformed request, also a body over 16 KiB or an unsupported Content-Type (RFC 6749 §5.2)'),
        429: rateLimited('Too many requests from this address; retry after Retry-After'),
        503: unavailable('The token store is unavailable: nothing was revoked; retry after Retry-After (RFC 7009 §2.2.1)')
      }
    },
    errorHandler: oauthRequestErrors
  }, async function revoke (request, reply) {
    await sessions.revoke(request.body.token, request.body.token_type_hint)
    return reply.code(200).send({})
  })
}

export default revokeRoute

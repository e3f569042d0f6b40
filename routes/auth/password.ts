import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BEARER_SECURITY, PasswordSchema, errorResponse, jsonBodyErrors, rateLimited, unauthorized, unavailable } from '../../src/schemas.js'

const passwordRoute: FastifyPluginAsyncTypebox = async function passwordRoute (fastify) {
  const { sessions, rateLimits } = fastify.tollgate

  fastify.post('/password', {
    onRequest: [fastify.authenticate],
    // After authentication and body validation, before any argon2 work: keyed by request.user.id.
    preHandler: [rateLimits.perUser],
    schema: {
      tags: ['auth'],
      summary: 'Change the password; every other session ends',
      description: 'Needs the current password as well as the access token. The session that asks stays logged in; every other session ends, so other devices must log in again with the new password. Password-reset links mailed earlier stop working (`LINK_TOKEN_SUPERSEDED`).',
      operationId: 'changePassword',
      security: BEARER_SECURITY,
      body: Type.Object({
        current_password: Type.String({ minLength: 1, maxLength: 128 }),
        new_password: Type.Ref(PasswordSchema)
      }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'Password changed' }),
        400: errorResponse('The body is invalid: a field is missing, malformed or unknown, or the new password is not 8 to 128 characters'),
        401: unauthorized('Missing, invalid or revoked access token, or the current password is wrong'),
        ...jsonBodyErrors(),
        429: rateLimited('Too many current-password checks for this account; retry after Retry-After'),
        503: unavailable()
      }
    }
  }, async function changePassword (request, reply) {
    await sessions.changePassword(request.user, { currentPassword: request.body.current_password, newPassword: request.body.new_password })
    return reply.code(204).send(null)
  })
}

export default passwordRoute

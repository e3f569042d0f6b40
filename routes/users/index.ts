import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { toUserBody } from '../../src/entities/user.js'
import { BEARER_SECURITY, UserSchema, documented, errorResponse, jsonBodyErrors, rateLimited, unauthorized, unavailable } from '../../src/schemas.js'

/** GET and DELETE /users/me. */
const usersRoutes: FastifyPluginAsyncTypebox = async function usersRoutes (fastify) {
  const { sessions, rateLimits } = fastify.tollgate

  fastify.get('/me', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['users'],
      summary: 'The signed-in user',
      description: 'The account the access token belongs to.',
      operationId: 'getCurrentUser',
      security: BEARER_SECURITY,
      response: {
        200: documented(Type.Ref(UserSchema), 'The signed-in user'),
        401: unauthorized(),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
      }
    }
  }, async function me (request) {
    return toUserBody(await sessions.currentUser(request.user))
  })

  fastify.delete('/me', {
    onRequest: [fastify.authenticate],
    // After authentication and body validation, before any argon2 work: keyed by request.user.id.
    preHandler: [rateLimits.perUser],
    schema: {
      tags: ['users'],
      summary: 'Delete the account and end all its sessions',
      description: 'Needs the password as well as the access token. The account is deleted and every session ends, together; it cannot be undone, and the email can register again.',
      operationId: 'deleteCurrentUser',
      security: BEARER_SECURITY,
      body: Type.Object({ password: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'Account deleted' }),
        400: errorResponse('The body is invalid: the password is missing, or a field is malformed or unknown'),
        401: unauthorized('Missing, invalid or revoked access token, or the password is wrong'),
        ...jsonBodyErrors(),
        429: rateLimited('Too many password checks for this account; retry after Retry-After'),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
      }
    }
  }, async function deleteMe (request, reply) {
    await sessions.deleteAccount(request.user, request.body.password)
    return reply.code(204).send(null)
  })
}

export default usersRoutes

import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { toUserBody } from '../../src/entities/user.js'
import { BEARER_SECURITY, UserSchema, errorResponse } from '../../src/schemas.js'

/** GET and DELETE /users/me. */
const usersRoutes: FastifyPluginAsyncTypebox = async function usersRoutes (fastify) {
  const { sessions } = fastify.tollgate

  fastify.get('/me', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['users'],
      summary: 'The signed-in user',
      security: BEARER_SECURITY,
      response: {
        200: Type.Ref(UserSchema),
        401: errorResponse('Missing, invalid or revoked access token'),
        503: errorResponse('A backing service is unavailable')
      }
    }
  }, async function me (request) {
    return toUserBody(await sessions.currentUser(request.user))
  })

  fastify.delete('/me', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['users'],
      summary: 'Delete the account and end all its sessions',
      security: BEARER_SECURITY,
      body: Type.Object({ password: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'Account deleted' }),
        400: errorResponse('Invalid body'),
        401: errorResponse('Invalid access token, or the password is wrong'),
        503: errorResponse('A backing service is unavailable')
      }
    }
  }, async function deleteMe (request, reply) {
    await sessions.deleteAccount(request.user, request.body.password)
    return reply.code(204).send(null)
  })
}

export default usersRoutes

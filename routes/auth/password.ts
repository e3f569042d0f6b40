import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BEARER_SECURITY, PasswordSchema, errorResponse } from '../../src/schemas.js'

const passwordRoute: FastifyPluginAsyncTypebox = async function passwordRoute (fastify) {
  const { sessions } = fastify.tollgate

  fastify.post('/password', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'Change the password; every other session ends',
      security: BEARER_SECURITY,
      body: Type.Object({
        current_password: Type.String({ minLength: 1, maxLength: 128 }),
        new_password: Type.Ref(PasswordSchema)
      }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'Password changed' }),
        400: errorResponse('Invalid body'),
        401: errorResponse('Invalid access token, or the current password is wrong'),
        503: errorResponse('A backing service is unavailable or busy')
      }
    }
  }, async function changePassword (request, reply) {
    await sessions.changePassword(request.user, { currentPassword: request.body.current_password, newPassword: request.body.new_password })
    return reply.code(204).send(null)
  })
}

export default passwordRoute

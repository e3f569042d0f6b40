import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { toUserBody } from '../../src/entities/user.js'
import { InvalidTokenError, WrongPasswordError } from '../../src/errors.js'
import { BEARER_SECURITY, UserSchema, errorResponse } from '../../src/schemas.js'

const usersRoutes: FastifyPluginAsyncTypebox = async function usersRoutes (fastify) {
  const { users, tokenStore, passwords } = fastify

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
    const user = await users.findById(request.user.id)
    if (!user) throw new InvalidTokenError()
    return toUserBody(user)
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
    const user = await users.findById(request.user.id)
    if (!user) throw new InvalidTokenError()
    if (!await passwords.verify(user.passwordHash, request.body.password)) throw new WrongPasswordError()
    // Sessions first: if Redis is down this fails with 503 and nothing is deleted.
    await tokenStore.endSessions({ userId: user.id, now: Date.now() })
    await users.remove(user.id)
    return reply.code(204).send(null)
  })
}

export default usersRoutes

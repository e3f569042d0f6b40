import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { BEARER_SECURITY, errorResponse } from '../../src/schemas.js'

/** POST /logout and POST /logout-all. */
const logoutRoutes: FastifyPluginAsyncTypebox = async function logoutRoutes (fastify) {
  const { sessions } = fastify.tollgate

  fastify.post('/logout', {
    onRequest: [fastify.authenticate],
    preValidation: absentBodyAsEmpty,
    schema: {
      tags: ['auth'],
      summary: 'End the current session',
      description: 'Its refresh token leaves the allowlist and its access tokens stop working. A refresh_token of another of your sessions in the body ends that one too; an invalid one is ignored (RFC 7009 §2.2).',
      security: BEARER_SECURITY,
      'x-body-optional': true,
      body: Type.Object({ refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'Logged out' }),
        400: errorResponse('Invalid body'),
        401: errorResponse('Missing, invalid or revoked access token'),
        503: errorResponse('A backing service is unavailable')
      }
    }
  }, async function logout (request, reply) {
    await sessions.logout(request.user, request.body.refresh_token)
    return reply.code(204).send(null)
  })

  fastify.post('/logout-all', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'End every session of the user',
      security: BEARER_SECURITY,
      response: {
        204: Type.Null({ description: 'Every session ended' }),
        401: errorResponse('Missing, invalid or revoked access token'),
        503: errorResponse('A backing service is unavailable')
      }
    }
  }, async function logoutAll (request, reply) {
    await sessions.logoutAll(request.user)
    return reply.code(204).send(null)
  })
}

/** A POST without a body is a body with no fields (the body of /auth/logout is optional). */
async function absentBodyAsEmpty (request: FastifyRequest) {
  request.body ??= {}
}

export default logoutRoutes

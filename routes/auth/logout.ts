import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { BEARER_SECURITY, errorResponse, jsonBodyErrors, unauthorized, unavailable } from '../../src/schemas.js'

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
      operationId: 'logout',
      security: BEARER_SECURITY,
      'x-body-optional': true,
      body: Type.Object({ refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'Logged out' }),
        400: errorResponse('The body is invalid: a field is malformed or unknown (message names it)'),
        401: unauthorized(),
        ...jsonBodyErrors(),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
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
      description: 'Logs the user out everywhere, this session included: every refresh token stops working, and so does every access token issued until now.',
      operationId: 'logoutAll',
      security: BEARER_SECURITY,
      response: {
        204: Type.Null({ description: 'Every session ended' }),
        401: unauthorized(),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
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

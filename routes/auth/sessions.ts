import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BEARER_SECURITY, SessionSchema, errorResponse, noBodyErrors, unauthorized, unavailable } from '../../src/schemas.js'

/** GET /sessions and DELETE /sessions/:id. */
const sessionsRoutes: FastifyPluginAsyncTypebox = async function sessionsRoutes (fastify) {
  const { sessions } = fastify.tollgate

  fastify.get('/sessions', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'List the live sessions of the user, newest first',
      description: 'One entry per device or client that logged in and has not logged out or expired; `current` marks the session of the token that asks. Use the id with endSession.',
      operationId: 'listSessions',
      security: BEARER_SECURITY,
      response: {
        200: Type.Array(Type.Ref(SessionSchema), { description: 'The live sessions, newest first' }),
        401: unauthorized(),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
      }
    }
  }, async function listSessions (request) {
    const live = await sessions.listSessions(request.user)
    return live.map(s => ({
      id: s.id,
      created_at: new Date(s.createdAt).toISOString(),
      last_used_at: new Date(s.lastUsedAt).toISOString(),
      expires_at: new Date(s.expiresAt).toISOString(),
      user_agent: s.userAgent,
      ip: s.ip,
      current: s.id === request.user.sid
    }))
  })

  fastify.delete('/sessions/:id', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'End one session of the user',
      description: 'Logs out one session, by its id from listSessions: its refresh token stops working and its access tokens are refused. Ending the current session is the same as logout.',
      operationId: 'endSession',
      security: BEARER_SECURITY,
      params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
      response: {
        204: Type.Null({ description: 'Session ended' }),
        ...noBodyErrors(),
        400: errorResponse('The id is not a UUID, or a body was sent (this route takes none) that is not valid JSON'),
        401: unauthorized(),
        404: errorResponse('No live session of this user has this id'),
        414: errorResponse('The id is longer than 100 characters'),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
      }
    }
  }, async function endSession (request, reply) {
    await sessions.endSession(request.user, request.params.id)
    return reply.code(204).send(null)
  })
}

export default sessionsRoutes

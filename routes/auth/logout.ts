import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BEARER_SECURITY, documented, errorResponse, jsonBodyErrors, noBodyErrors, unauthorized, unavailable } from '../../src/schemas.js'
import { CLEAR_COOKIES, COOKIE_SECURITY, acceptCookies, csrfRefused, refreshCookies } from './cookie-support.js'
import { absentBodyAsEmpty } from './grant-support.js'

/** POST /logout and POST /logout-all. */
const logoutRoutes: FastifyPluginAsyncTypebox = async function logoutRoutes (fastify) {
  const { sessions, config } = fastify.tollgate
  const cookieMode = config.REFRESH_COOKIE
  if (cookieMode) await acceptCookies(fastify)
  const cookies = refreshCookies(fastify)
  // Cookie mode: both routes end this browser's session, so both expire its cookies.
  const ended = (description: string) => documented(Type.Null(), description, cookieMode ? CLEAR_COOKIES : undefined)

  fastify.post('/logout', {
    onRequest: [fastify.authenticate],
    preValidation: absentBodyAsEmpty,
    schema: {
      tags: ['auth'],
      summary: 'End the current session',
      description: 'Its refresh token leaves the allowlist and its access tokens stop working. A refresh_token of another of your sessions in the body ends that one too; an invalid one is ignored (RFC 7009 §2.2).' +
        (cookieMode ? ' Cookie mode: without refresh_token in the body, the refresh-token cookie, when sent, is read as that token, and X-CSRF-Token must then equal the CSRF cookie (403 otherwise, and nothing ends). The cookies are expired.' : ''),
      operationId: 'logout',
      security: cookieMode ? [...BEARER_SECURITY, { bearerAuth: [], ...COOKIE_SECURITY }] : BEARER_SECURITY,
      'x-body-optional': true,
      body: Type.Object({ refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false }),
      response: {
        204: ended('Logged out'),
        400: errorResponse('The body is invalid: a field is malformed or unknown (message names it)'),
        401: unauthorized(),
        ...(cookieMode && { 403: csrfRefused() }),
        ...jsonBodyErrors(),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
      }
    }
  }, async function logout (request, reply) {
    const refreshToken = request.body.refresh_token ?? (cookieMode ? cookies.tokenOf(request)?.refreshToken : undefined)
    await sessions.logout(request.user, refreshToken)
    if (cookieMode) cookies.clear(reply)
    return reply.code(204).send(null)
  })

  fastify.post('/logout-all', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'End every session of the user',
      description: 'Logs the user out everywhere, this session included: every refresh token stops working, and so does every access token issued until now.' +
        (cookieMode ? ' Cookie mode: the cookies are expired.' : ''),
      operationId: 'logoutAll',
      security: BEARER_SECURITY,
      response: {
        204: ended('Every session ended'),
        ...noBodyErrors(),
        401: unauthorized(),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
      }
    }
  }, async function logoutAll (request, reply) {
    await sessions.logoutAll(request.user)
    if (cookieMode) cookies.clear(reply)
    return reply.code(204).send(null)
  })
}

export default logoutRoutes

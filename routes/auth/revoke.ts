import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { OAuthError } from '../../src/errors.js'
import { PUBLIC_SECURITY, documented, oauthErrorResponse, rateLimited, unavailable } from '../../src/schemas.js'
import { CLEAR_COOKIES, COOKIE_SECURITY, acceptCookies, csrfRefused, refreshCookies } from './cookie-support.js'
import { FORM, absentBodyAsEmpty, acceptFormBodies, oauthRequestErrors } from './grant-support.js'

const TOKEN = Type.String({ minLength: 1, maxLength: 4096, description: 'The token to revoke' })

/** RFC 7009 token revocation, for public clients: no client authentication. */
const revokeRoute: FastifyPluginAsyncTypebox = async function revokeRoute (fastify) {
  const { sessions, rateLimits, config } = fastify.tollgate
  const cookieMode = config.REFRESH_COOKIE
  await acceptFormBodies(fastify)
  if (cookieMode) await acceptCookies(fastify)
  const cookies = refreshCookies(fastify)

  fastify.post('/revoke', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Revoke a refresh or access token (RFC 7009)',
      operationId: 'revokeToken',
      description: 'A refresh token ends its session. An access token ends its session too, and is itself refused from then on. ' +
        'The answer is 200 whether or not the token was valid, so it reveals nothing about the token (RFC 7009 §2.2).' +
        (cookieMode ? ' Cookie mode: without token in the body, the refresh-token cookie is revoked, X-CSRF-Token must equal the CSRF cookie (403 otherwise, and nothing is revoked), and the cookies are expired: how a browser app that has lost its access token logs out.' : ''),
      security: cookieMode ? [{}, COOKIE_SECURITY] : PUBLIC_SECURITY,
      consumes: [FORM, 'application/json'],
      ...(cookieMode && { 'x-body-optional': true }),
      body: Type.Object({
        token: cookieMode ? Type.Optional(TOKEN) : TOKEN,
        token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'access_token or refresh_token: which kind is tried first; any other value is ignored' }))
      }),
      response: {
        200: documented(Type.Object({}, { additionalProperties: false }), 'Revoked, or there was nothing to revoke: an empty object either way', cookieMode ? CLEAR_COOKIES : undefined),
        400: oauthErrorResponse('invalid_request: no token, or a malformed request, also a body over 16 KiB or an unsupported Content-Type (RFC 6749 §5.2)'),
        ...(cookieMode && { 403: csrfRefused() }),
        429: rateLimited('Too many requests from this address; retry after Retry-After'),
        503: unavailable('The token store is unavailable: nothing was revoked; retry after Retry-After (RFC 7009 §2.2.1)')
      }
    },
    ...(cookieMode && { preValidation: absentBodyAsEmpty }),
    errorHandler: oauthRequestErrors
  }, async function revoke (request, reply) {
    const { token, token_type_hint: hint } = request.body
    if (!cookieMode || token !== undefined) {
      await sessions.revoke(token as string, hint)
      return reply.code(200).send({})
    }
    const fromCookie = cookies.tokenOf(request)
    if (!fromCookie) throw new OAuthError('invalid_request', 'No token: send token in the body, or the refresh-token cookie with X-CSRF-Token')
    await sessions.revoke(fromCookie.refreshToken, 'refresh_token')
    cookies.clear(reply)
    return reply.code(200).send({})
  })
}

export default revokeRoute

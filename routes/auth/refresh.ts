import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError, FastifyRequest } from 'fastify'
import { OAuthError } from '../../src/errors.js'
import {
  CookieTokenResponseSchema, NO_STORE_HEADERS, OAuthErrorSchema, PUBLIC_SECURITY, TokenResponseSchema, documented, oauthErrorResponse, rateLimited,
  tokenResponse, unavailable
} from '../../src/schemas.js'
import { CLEAR_COOKIES, COOKIE_SECURITY, SET_COOKIES, acceptCookies, csrfRefused, refreshCookies } from './cookie-support.js'
import { FORM, NO_STORE, absentBodyAsEmpty, acceptFormBodies, clientOf, oauthRequestErrors } from './grant-support.js'

const REFRESH_TOKEN = Type.String({ minLength: 1, maxLength: 4096 })
/** Cookie mode's 200: the next refresh token goes back where the presented one came from. */
const cookieOrBodyTokens = documented(
  Type.Union([CookieTokenResponseSchema, Type.Ref(TokenResponseSchema)]),
  'The next access token; the next refresh token is in the cookie set when the presented one came from the cookie, or in the body (refresh_token) when it came from the body. The presented refresh token is spent.',
  { ...NO_STORE_HEADERS, ...SET_COOKIES }
)
const REFUSED = 'invalid_grant: the refresh token is invalid, expired, spent or revoked; log in again. invalid_request: a malformed request, also a body over 16 KiB or an unsupported Content-Type. unsupported_grant_type: a grant_type other than refresh_token (RFC 6749 §5.2)'

/**
 * As on the other OAuth endpoints, except that a grant this endpoint does not offer is RFC 6749
 * §5.2's unsupported_grant_type, whatever else is wrong with the request.
 */
function refreshRequestErrors (error: FastifyError, request: FastifyRequest): never {
  const grantType = (request.body as { grant_type?: unknown } | undefined)?.grant_type
  // An empty one is a missing one: invalid_request.
  if (typeof grantType === 'string' && grantType !== '' && grantType !== 'refresh_token') {
    throw new OAuthError('unsupported_grant_type', 'grant_type must be refresh_token: the only grant this endpoint offers (passwords go to POST /auth/login)')
  }
  return oauthRequestErrors(error)
}

/** The token endpoint's refresh grant (RFC 6749 §6), in its own scope: only it accepts form bodies. */
const refreshRoute: FastifyPluginAsyncTypebox = async function refreshRoute (fastify) {
  const { sessions, rateLimits, config } = fastify.tollgate
  const cookieMode = config.REFRESH_COOKIE
  await acceptFormBodies(fastify)
  if (cookieMode) await acceptCookies(fastify)
  const cookies = refreshCookies(fastify)

  fastify.post('/refresh', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Rotate a refresh token (RFC 6749 §6)',
      description: 'The presented refresh token is spent and a new pair is returned; keep only the newest refresh token. Presenting a spent token again revokes its session, except within the reuse interval, where the same successor is returned.' +
        (cookieMode ? ' Cookie mode: without refresh_token in the body, the refresh token is the cookie\'s, X-CSRF-Token must equal the CSRF cookie (403 otherwise, and nothing is rotated), and the next refresh token is set in the cookie, not the body; a refused cookie is expired. A refresh_token in the body gets its successor in the body, as without cookie mode.' : ''),
      operationId: 'refreshToken',
      security: cookieMode ? [{}, COOKIE_SECURITY] : PUBLIC_SECURITY,
      consumes: ['application/json', FORM],
      ...(cookieMode && { 'x-body-optional': true }),
      body: Type.Object({
        refresh_token: cookieMode ? Type.Optional(REFRESH_TOKEN) : REFRESH_TOKEN,
        grant_type: Type.Optional(Type.Literal('refresh_token'))
      }),
      response: {
        200: cookieMode
          ? cookieOrBodyTokens
          : tokenResponse('The next access and refresh tokens; the presented refresh token is spent'),
        // Also the answer to a body over 16 KiB or an unsupported content type: no 413 or 415 here.
        400: cookieMode
          ? documented(Type.Ref(OAuthErrorSchema), `${REFUSED} A refused cookie is expired (Set-Cookie).`, { ...NO_STORE_HEADERS, ...CLEAR_COOKIES })
          : oauthErrorResponse(REFUSED),
        ...(cookieMode && { 403: csrfRefused() }),
        429: rateLimited('Too many refreshes from this address; retry after Retry-After'),
        503: unavailable('A backing service is unavailable; retry after Retry-After')
      }
    },
    ...(cookieMode && { preValidation: absentBodyAsEmpty }),
    errorHandler: refreshRequestErrors
  }, async function refresh (request, reply) {
    const fromBody = request.body.refresh_token
    // A token from the body gets its successor in the body, also in cookie mode: setting cookies
    // there would let a cross-site form post plant another session in the browser (login CSRF).
    if (!cookieMode || fromBody !== undefined) {
      const tokens = await sessions.refresh(fromBody as string, clientOf(request))
      reply.headers(NO_STORE)
      return tokens
    }
    // The cookie's token, CSRF-checked before anything is rotated.
    const fromCookie = cookies.tokenOf(request)
    if (!fromCookie) throw new OAuthError('invalid_request', 'No refresh token: send the refresh-token cookie with X-CSRF-Token, or refresh_token in the body')
    try {
      const tokens = await sessions.refresh(fromCookie.refreshToken, clientOf(request))
      reply.headers(NO_STORE)
      return cookies.issue(reply, tokens, fromCookie.csrfToken)
    } catch (err) {
      // A refused cookie (spent, reused, expired, revoked) is of no more use: the browser drops it.
      if (err instanceof OAuthError) cookies.clear(reply)
      throw err
    }
  })
}

export default refreshRoute

import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmailSchema, PUBLIC_SECURITY, cookieTokenResponse, errorResponse, jsonBodyErrors, rateLimited, tokenResponse, unauthorized, unavailable } from '../../src/schemas.js'
import { SET_COOKIES, acceptCookies, refreshCookies } from './cookie-support.js'
import { NO_STORE, clientOf } from './grant-support.js'

const loginRoute: FastifyPluginAsyncTypebox = async function loginRoute (fastify) {
  const { sessions, rateLimits, config } = fastify.tollgate
  const cookieMode = config.REFRESH_COOKIE
  if (cookieMode) await acceptCookies(fastify)
  const cookies = refreshCookies(fastify)

  fastify.post('/login', {
    onRequest: [rateLimits.perIp],
    // After body validation: the per-account limit is keyed by the (validated) email.
    preHandler: [rateLimits.perAccount],
    schema: {
      tags: ['auth'],
      summary: 'Exchange email and password for a token pair',
      description: 'Starts a session: send the access token as a Bearer token, and the refresh token to refreshToken for the next pair before the access token expires. A wrong email and a wrong password get the same 401. With REQUIRE_VERIFIED_EMAIL on, an unverified address gets 403 `EMAIL_NOT_VERIFIED`, told only after the password was found right.' +
        (cookieMode ? ' Cookie mode: the refresh token is set in an HttpOnly cookie instead of the body, with a readable CSRF cookie to echo in X-CSRF-Token.' : ''),
      operationId: 'login',
      security: PUBLIC_SECURITY,
      body: Type.Object({
        email: Type.Ref(EmailSchema),
        // Any length up to the maximum: a login must not reveal the password policy.
        password: Type.String({ minLength: 1, maxLength: 128 })
      }, { additionalProperties: false }),
      response: {
        200: cookieMode
          ? cookieTokenResponse('A new session\'s access token; its refresh token and CSRF token are in the cookies set', SET_COOKIES)
          : tokenResponse('A new session\'s access and refresh tokens'),
        400: errorResponse('The body is invalid: a field is missing, malformed or unknown (message names it)'),
        401: unauthorized('Wrong email or password (one generic answer for both)'),
        403: errorResponse('`EMAIL_NOT_VERIFIED`: the password is right, but REQUIRE_VERIFIED_EMAIL is on and the address is not verified yet. Without the mailed link, a password reset (POST /auth/password/forgot) verifies the address'),
        ...jsonBodyErrors(),
        429: rateLimited('Too many attempts from this address or for this account; retry after Retry-After'),
        503: unavailable()
      }
    }
  }, async function login (request, reply) {
    const tokens = await sessions.login(request.body, clientOf(request))
    reply.headers(NO_STORE)
    return cookieMode ? cookies.issue(reply, tokens) : tokens
  })
}

export default loginRoute

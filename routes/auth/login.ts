import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmailSchema, PUBLIC_SECURITY, errorResponse, jsonBodyErrors, rateLimited, tokenResponse, unauthorized, unavailable } from '../../src/schemas.js'
import { NO_STORE, clientOf } from './grant-support.js'

const loginRoute: FastifyPluginAsyncTypebox = async function loginRoute (fastify) {
  const { sessions, rateLimits } = fastify.tollgate

  fastify.post('/login', {
    onRequest: [rateLimits.perIp],
    // After body validation: the per-account limit is keyed by the (validated) email.
    preHandler: [rateLimits.perAccount],
    schema: {
      tags: ['auth'],
      summary: 'Exchange email and password for a token pair',
      description: 'Starts a session: send the access token as a Bearer token, and the refresh token to refreshToken for the next pair before the access token expires. A wrong email and a wrong password get the same 401.',
      operationId: 'login',
      security: PUBLIC_SECURITY,
      body: Type.Object({
        email: Type.Ref(EmailSchema),
        // Any length up to the maximum: a login must not reveal the password policy.
        password: Type.String({ minLength: 1, maxLength: 128 })
      }, { additionalProperties: false }),
      response: {
        200: tokenResponse('A new session\'s access and refresh tokens'),
        400: errorResponse('The body is invalid: a field is missing, malformed or unknown (message names it)'),
        401: unauthorized('Wrong email or password (one generic answer for both)'),
        ...jsonBodyErrors(),
        429: rateLimited('Too many attempts from this address or for this account; retry after Retry-After'),
        503: unavailable()
      }
    }
  }, async function login (request, reply) {
    const tokens = await sessions.login(request.body, clientOf(request))
    reply.headers(NO_STORE)
    return tokens
  })
}

export default loginRoute

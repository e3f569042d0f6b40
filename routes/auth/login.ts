import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmailSchema, PUBLIC_SECURITY, TokenResponseSchema, errorResponse } from '../../src/schemas.js'
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
      security: PUBLIC_SECURITY,
      body: Type.Object({
        email: Type.Ref(EmailSchema),
        // Any length up to the maximum: a login must not reveal the password policy.
        password: Type.String({ minLength: 1, maxLength: 128 })
      }, { additionalProperties: false }),
      response: {
        200: Type.Ref(TokenResponseSchema),
        400: errorResponse('Invalid body'),
        401: errorResponse('Wrong email or password (one generic answer for both)'),
        429: errorResponse('Too many attempts from this address or for this account; see Retry-After'),
        503: errorResponse('A backing service is unavailable or busy')
      }
    }
  }, async function login (request, reply) {
    const tokens = await sessions.login(request.body, clientOf(request))
    reply.headers(NO_STORE)
    return tokens
  })
}

export default loginRoute

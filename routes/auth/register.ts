import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { toUserBody } from '../../src/entities/user.js'
import { EmailSchema, PasswordSchema, PUBLIC_SECURITY, UserSchema, documented, errorResponse, jsonBodyErrors, rateLimited, unavailable } from '../../src/schemas.js'

const registerRoute: FastifyPluginAsyncTypebox = async function registerRoute (fastify) {
  const { sessions, recovery, rateLimits } = fastify.tollgate

  fastify.post('/register', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Create an account',
      description: 'Creates an account and returns it, without logging in: call login next. The email is stored lower-case (surrounding spaces are refused), and the password takes 8 to 128 characters. A link to verify the address is mailed to it (`APP_URL/verify-email?token=…`, see POST /auth/email/verify).',
      operationId: 'register',
      security: PUBLIC_SECURITY,
      body: Type.Object({
        email: Type.Ref(EmailSchema),
        password: Type.Ref(PasswordSchema),
        name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 }))
      }, { additionalProperties: false }),
      response: {
        201: documented(Type.Ref(UserSchema), 'The account, created'),
        400: errorResponse('The body is invalid: a field is missing, malformed or unknown (message names it)'),
        409: errorResponse('An account with this email already exists'),
        ...jsonBodyErrors(),
        429: rateLimited('Too many registrations from this address; retry after Retry-After'),
        503: unavailable()
      }
    }
  }, async function register (request, reply) {
    const { email, password, name } = request.body
    const user = await sessions.register({ email, password, name: name ?? null })
    // The verification link goes out after this answer, which never depends on it.
    recovery.welcome(user)
    return reply.code(201).send(toUserBody(user))
  })
}

export default registerRoute

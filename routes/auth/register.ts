import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { toUserBody } from '../../src/entities/user.js'
import { EmailSchema, PasswordSchema, PUBLIC_SECURITY, UserSchema, errorResponse } from '../../src/schemas.js'

const registerRoute: FastifyPluginAsyncTypebox = async function registerRoute (fastify) {
  const { sessions, rateLimits } = fastify.tollgate

  fastify.post('/register', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Create an account',
      security: PUBLIC_SECURITY,
      body: Type.Object({
        email: Type.Ref(EmailSchema),
        password: Type.Ref(PasswordSchema),
        name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 }))
      }, { additionalProperties: false }),
      response: {
        201: Type.Ref(UserSchema),
        400: errorResponse('Invalid body'),
        409: errorResponse('The email is already registered'),
        429: errorResponse('Too many attempts from this address; see Retry-After'),
        503: errorResponse('A backing service is unavailable or busy')
      }
    }
  }, async function register (request, reply) {
    const { email, password, name } = request.body
    const user = await sessions.register({ email, password, name: name ?? null })
    return reply.code(201).send(toUserBody(user))
  })
}

export default registerRoute

import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AcceptedSchema, EmailSchema, LinkTokenSchema, PUBLIC_SECURITY, PasswordSchema, documented, errorResponse, jsonBodyErrors, rateLimited, unavailable } from '../../src/schemas.js'

/** POST /auth/password/forgot and POST /auth/password/reset. */
const passwordResetRoutes: FastifyPluginAsyncTypebox = async function passwordResetRoutes (fastify) {
  const { recovery, rateLimits } = fastify.tollgate

  fastify.post('/password/forgot', {
    onRequest: [rateLimits.perIp],
    // After body validation: keyed by the (validated) address, whether it has an account or not.
    preHandler: [rateLimits.perResetAddress],
    schema: {
      tags: ['auth'],
      summary: 'Ask for a password-reset link',
      description: 'Answers 202 with the same `{message}` for every well-formed address, at once, whether it has an account or not: the lookup and the mail happen afterwards. Only an address with an account gets a link `APP_URL/reset-password?token=…`, valid for 30 minutes; a newer request replaces the older links. At most 3 requests an hour per address, known or not.',
      operationId: 'forgotPassword',
      security: PUBLIC_SECURITY,
      body: Type.Object({ email: Type.Ref(EmailSchema) }, { additionalProperties: false }),
      response: {
        202: documented(Type.Ref(AcceptedSchema), 'Accepted: if the address has an account, a link is on its way. The same body for every address'),
        400: errorResponse('The body is invalid: the email is missing or malformed, or a field is unknown'),
        ...jsonBodyErrors(),
        429: rateLimited('Too many requests from this client IP, or more than 3 this hour for this email; retry after Retry-After'),
        503: unavailable('The rate-limit store is unavailable; retry after Retry-After')
      }
    }
  }, async function forgotPassword (request, reply) {
    recovery.requestPasswordReset(request.body.email)
    return reply.code(202).send({ message: 'If this address has an account, a link to reset its password is on its way' })
  })

  fastify.post('/password/reset', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Set a new password with the token of a reset link',
      description: 'The front end sends the token of the mailed link `APP_URL/reset-password?token=…` with the new password (8 to 128 characters). The token works once, for 30 minutes, and only the newest one sent does. Every session of the user ends, access tokens included, the address counts as verified, and the owner is told by mail. Log in again with the new password.',
      operationId: 'resetPassword',
      security: PUBLIC_SECURITY,
      body: Type.Object({ token: LinkTokenSchema, new_password: Type.Ref(PasswordSchema) }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'The password is changed and every session has ended' }),
        400: errorResponse('The token is not usable; `code` says why: `LINK_TOKEN_UNKNOWN`, `LINK_TOKEN_EXPIRED` (after 30 minutes), `LINK_TOKEN_USED` or `LINK_TOKEN_SUPERSEDED` (a newer link was sent, or the password was changed since). Or the body is invalid (`INVALID_REQUEST`): the new password is not 8 to 128 characters, or a field is missing or unknown'),
        ...jsonBodyErrors(),
        429: rateLimited(),
        503: unavailable()
      }
    }
  }, async function resetPassword (request, reply) {
    await recovery.resetPassword(request.body.token, request.body.new_password)
    return reply.code(204).send(null)
  })
}

export default passwordResetRoutes

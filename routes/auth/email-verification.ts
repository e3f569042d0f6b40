import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AcceptedSchema, BEARER_SECURITY, LinkTokenSchema, PUBLIC_SECURITY, documented, errorResponse, jsonBodyErrors, noBodyErrors, rateLimited, unauthorized, unavailable } from '../../src/schemas.js'

const LINK_TOKEN_FAILURE = 'The token is not usable; `code` says why: `LINK_TOKEN_UNKNOWN`, `LINK_TOKEN_EXPIRED` (after 24 hours), `LINK_TOKEN_USED` or `LINK_TOKEN_SUPERSEDED` (a newer link was sent). Or the body is invalid (`INVALID_REQUEST`)'

/** POST /auth/email/verify and POST /auth/email/verify/send. */
const emailVerificationRoutes: FastifyPluginAsyncTypebox = async function emailVerificationRoutes (fastify) {
  const { recovery, rateLimits } = fastify.tollgate

  fastify.post('/email/verify', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Verify the email address with the token of a mailed link',
      description: 'Registration (and POST /auth/email/verify/send) mails a link `APP_URL/verify-email?token=…`; the front end sends its token here. A token works once, for 24 hours, and only the newest one sent to the user does. Needs no access token: the link is the proof.',
      operationId: 'verifyEmail',
      security: PUBLIC_SECURITY,
      body: Type.Object({ token: LinkTokenSchema }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'The address is verified: the user\'s `email_verified` is true' }),
        400: errorResponse(LINK_TOKEN_FAILURE),
        ...jsonBodyErrors(),
        429: rateLimited(),
        503: unavailable()
      }
    }
  }, async function verifyEmail (request, reply) {
    await recovery.verifyEmail(request.body.token)
    return reply.code(204).send(null)
  })

  fastify.post('/email/verify/send', {
    onRequest: [fastify.authenticate],
    preHandler: [rateLimits.perUserVerificationMail],
    schema: {
      tags: ['auth'],
      summary: 'Mail a fresh verification link to the signed-in user',
      description: 'At most once a minute per user, and 3 verification mails an hour per address, registration\'s included. The new link replaces every earlier one. An address that is verified already gets no mail, and the same 202. The answer does not wait for the mail: a mail that cannot be sent is retried in the background.',
      operationId: 'sendVerificationEmail',
      security: BEARER_SECURITY,
      response: {
        202: documented(Type.Ref(AcceptedSchema), 'A link is on its way (unless the address is verified already)'),
        ...noBodyErrors(),
        401: unauthorized(),
        429: rateLimited('A verification mail was sent to this user less than a minute ago, or the address has had 3 this hour; retry after Retry-After'),
        503: unavailable()
      }
    }
  }, async function sendVerificationEmail (request, reply) {
    await recovery.resendVerification(request.user)
    return reply.code(202).send({ message: 'Unless this address is verified already, a verification link is on its way' })
  })
}

export default emailVerificationRoutes

import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { parseIntrospectionClients } from '../../src/config.js'
import { InvalidClientError } from '../../src/errors.js'
import { NO_STORE_HEADERS, OAuthErrorSchema, WWW_AUTHENTICATE_BASIC, documented, oauthErrorResponse, rateLimited, unavailable } from '../../src/schemas.js'
import { createClientAuthenticator } from '../../src/sessions/client-authentication.js'
import { FORM, NO_STORE, acceptFormBodies, oauthRequestErrors } from './grant-support.js'

const IntrospectionSchema = Type.Object({
  active: Type.Boolean({ description: 'Whether the token is a live access token; when false, no other member is sent' }),
  token_type: Type.Optional(Type.Literal('Bearer')),
  sub: Type.Optional(Type.String({ format: 'uuid', description: 'The user id' })),
  client_id: Type.Optional(Type.String()),
  iss: Type.Optional(Type.String()),
  aud: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
  iat: Type.Optional(Type.Integer()),
  exp: Type.Optional(Type.Integer()),
  jti: Type.Optional(Type.String()),
  sid: Type.Optional(Type.String({ format: 'uuid', description: 'The session the token belongs to' })),
  roles: Type.Optional(Type.Array(Type.String()))
}, { additionalProperties: false, description: 'RFC 7662 §2.2 introspection response' })

/**
 * RFC 7662 token introspection, for resource servers that cannot share Tollgate's Redis. Registered
 * only when introspection clients are configured; they authenticate with HTTP Basic.
 */
const introspectRoute: FastifyPluginAsyncTypebox = async function introspectRoute (fastify) {
  const { sessions, rateLimits, config } = fastify.tollgate
  const authenticateClient = createClientAuthenticator(parseIntrospectionClients(config.INTROSPECTION_CLIENTS ?? '') ?? new Map())
  await acceptFormBodies(fastify)

  async function introspectionClient (request: FastifyRequest, reply: FastifyReply) {
    const clientId = authenticateClient(request.headers.authorization)
    if (!clientId) throw new InvalidClientError()
    await rateLimits.perClient(clientId, reply)
  }

  fastify.post('/introspect', {
    // Per address first, so that guessing client secrets is bounded too.
    onRequest: [rateLimits.perIntrospectionIp, introspectionClient],
    schema: {
      tags: ['auth'],
      summary: 'Introspect an access token (RFC 7662)',
      operationId: 'introspectToken',
      description: 'For resource servers: tells whether an access token is live, with the same check as every authenticated request, ' +
        'so a token is inactive as soon as its session is logged out. Refresh tokens, and anything else, are inactive.',
      security: [{ introspectionClient: [] }],
      consumes: [FORM, 'application/json'],
      body: Type.Object({
        token: Type.String({ minLength: 1, maxLength: 4096, description: 'The token to introspect' }),
        token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'Ignored: only access tokens can be active' }))
      }),
      response: {
        200: documented(IntrospectionSchema, 'Whether the token is live and, if it is, its claims', NO_STORE_HEADERS),
        400: oauthErrorResponse('invalid_request: no token, or a malformed request, also a body over 16 KiB or an unsupported Content-Type (RFC 6749 §5.2)'),
        401: documented(Type.Ref(OAuthErrorSchema), 'invalid_client: no or wrong client credentials (RFC 6749 §5.2)', { ...NO_STORE_HEADERS, ...WWW_AUTHENTICATE_BASIC }),
        429: rateLimited('Too many requests from this client or address; retry after Retry-After'),
        503: unavailable('The token store is unavailable; retry after Retry-After')
      }
    },
    errorHandler: oauthRequestErrors
  }, async function introspect (request, reply) {
    reply.headers(NO_STORE)
    const claims = await sessions.introspect(request.body.token)
    if (!claims) return { active: false }
    return {
      active: true,
      token_type: 'Bearer' as const,
      sub: claims.sub,
      client_id: claims.client_id,
      iss: claims.iss,
      aud: claims.aud,
      iat: claims.iat,
      exp: claims.exp,
      jti: claims.jti,
      sid: claims.sid,
      roles: claims.roles
    }
  })
}

export default introspectRoute

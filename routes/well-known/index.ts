import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'

const JwkSchema = Type.Object({
  kty: Type.String(),
  crv: Type.String(),
  x: Type.String(),
  kid: Type.String(),
  alg: Type.String(),
  use: Type.String()
}, { additionalProperties: false })

const wellKnownRoutes: FastifyPluginAsyncTypebox = async function wellKnownRoutes (fastify) {
  fastify.get('/jwks.json', {
    schema: {
      tags: ['well-known'],
      summary: 'Public keys that verify access tokens (RFC 7517)',
      security: [],
      response: { 200: Type.Object({ keys: Type.Array(JwkSchema) }, { description: 'Empty when access tokens use HS256' }) }
    }
  }, async function jwks (request, reply) {
    reply.header('cache-control', 'public, max-age=300')
    return fastify.tollgate.jwks
  })
}

export default wellKnownRoutes

import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { JwkSetSchema, alwaysSent, documented } from '../../src/schemas.js'

const wellKnownRoutes: FastifyPluginAsyncTypebox = async function wellKnownRoutes (fastify) {
  fastify.get('/jwks.json', {
    schema: {
      tags: ['well-known'],
      summary: 'Public keys that verify access tokens (RFC 7517)',
      description: 'For resource servers that verify access tokens themselves: pick the key whose kid is in the token\'s header. Cache it for 5 minutes, and fetch it again on an unknown kid.',
      operationId: 'getJwks',
      security: [],
      response: {
        200: documented(Type.Ref(JwkSetSchema), 'The JWK Set; its keys are empty when access tokens use HS256', {
          'Cache-Control': alwaysSent(Type.Literal('public, max-age=300', { description: 'Cacheable for 5 minutes' }))
        })
      }
    }
  }, async function jwks (request, reply) {
    reply.header('cache-control', 'public, max-age=300')
    return fastify.tollgate.jwks
  })
}

export default wellKnownRoutes

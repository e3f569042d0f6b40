import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

export default fp(async function swaggerPlugin (fastify) {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tollgate',
        description: 'JWT authentication: register, log in, rotate refresh tokens, manage sessions.',
        version: '0.1.0'
      },
      tags: [
        { name: 'auth', description: 'Accounts, tokens and sessions' },
        { name: 'users', description: 'The signed-in user' },
        { name: 'well-known', description: 'Public keys for verifying access tokens' },
        { name: 'health', description: 'Liveness and readiness' }
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from /auth/login or /auth/refresh' }
        }
      }
    },
    // A route whose body may be absent says so with `x-body-optional` (the plugin marks every body required).
    transformObject (document) {
      if (!('openapiObject' in document)) return document.swaggerObject
      const { openapiObject } = document
      for (const operations of Object.values(openapiObject.paths ?? {})) {
        for (const operation of Object.values(operations ?? {}) as Array<Record<string, unknown>>) {
          if (operation?.['x-body-optional'] === true) {
            delete operation['x-body-optional']
            if (operation.requestBody) (operation.requestBody as { required: boolean }).required = false
          }
        }
      }
      return openapiObject
    },
    // Keep the shared schemas' $id names (User, TokenResponse, Error…) in components.schemas.
    refResolver: {
      buildLocalReference (json, _baseUri, _fragment, i) {
        return typeof json.$id === 'string' ? json.$id : `def-${i}`
      }
    }
  })
  // staticCSP: the UI's own Content-Security-Policy, replacing helmet's stricter API default on /docs.
  await fastify.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
}, { name: 'tollgate-swagger', fastify: '5.x' })

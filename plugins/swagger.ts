import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import { CSRF_COOKIE_NAME, CSRF_HEADER, REFRESH_COOKIE_NAME } from '../src/refresh-cookie.js'
import { ALWAYS_SENT } from '../src/schemas.js'

// sha256 of the <style> in swagger-ui-dist 5.32.1's logo (@fastify/swagger-ui 5.2.6); an upgrade may change it.
const SWAGGER_UI_LOGO_STYLE = 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='

export interface SwaggerOptions {
  /** Cookie mode (REFRESH_COOKIE): the refresh cookie and the CSRF header are security schemes. */
  refreshCookie?: boolean
}

/** The security schemes of cookie mode, as routes/auth/cookie-support.ts names them. */
const COOKIE_SECURITY_SCHEMES = {
  refreshCookie: {
    type: 'apiKey',
    in: 'cookie',
    name: REFRESH_COOKIE_NAME,
    description: `The refresh token, in the HttpOnly cookie that login and refresh set (REFRESH_COOKIE). Browsers send it by themselves (fetch: \`credentials: 'include'\`); a request that does must also send ${CSRF_HEADER}.`
  },
  csrfToken: {
    type: 'apiKey',
    in: 'header',
    name: CSRF_HEADER,
    description: `The double-submit CSRF token: the value of the readable \`${CSRF_COOKIE_NAME}\` cookie (or of the ${CSRF_HEADER} response header of login and refresh). Required with the refresh cookie; 403 CSRF_CHECK_FAILED without it.`
  }
} as const

export default fp(async function swaggerPlugin (fastify, { refreshCookie = false }: SwaggerOptions) {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tollgate',
        description: 'JWT authentication: register, log in, rotate refresh tokens, manage sessions.',
        version: '0.1.0',
        contact: { name: 'Tollgate maintainers' },
        // A URL, not an SPDX identifier: Spectral's license-url rule asks for one (3.1 allows only one of the two).
        license: { name: 'MIT', url: 'https://spdx.org/licenses/MIT.html' }
      },
      // Relative: clients resolve it against the URL they fetched this document from, whatever the
      // host and port. Paths already carry the prefix, so it is the origin's root.
      servers: [{ url: '/', description: 'The server that serves this document' }],
      tags: [
        { name: 'auth', description: 'Accounts, tokens and sessions' },
        { name: 'users', description: 'The signed-in user' },
        { name: 'well-known', description: 'Public keys for verifying access tokens' },
        { name: 'health', description: 'Liveness and readiness' }
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from /auth/login or /auth/refresh' },
          // Named by POST /auth/introspect: without it, generating the document fails (@fastify/swagger reads every scheme a route names).
          introspectionClient: { type: 'http', scheme: 'basic', description: 'An introspection client\'s id and secret (INTROSPECTION_CLIENTS, RFC 7662 §2.1)' },
          // Only in cookie mode, where routes name them.
          ...(refreshCookie && COOKIE_SECURITY_SCHEMES)
        }
      }
    },
    // A route whose body may be absent says so with `x-body-optional` (the plugin marks every body
    // required), and a response header always sent with ALWAYS_SENT (the plugin has no `required`).
    transformObject (document) {
      if (!('openapiObject' in document)) return document.swaggerObject
      const { openapiObject } = document
      for (const operations of Object.values(openapiObject.paths ?? {})) {
        for (const operation of Object.values(operations ?? {}) as Array<Record<string, unknown>>) {
          if (operation?.['x-body-optional'] === true) {
            delete operation['x-body-optional']
            if (operation.requestBody) (operation.requestBody as { required: boolean }).required = false
          }
          for (const response of Object.values(operation?.responses ?? {}) as Array<{ headers?: Record<string, { required?: boolean, schema?: Record<string, unknown> }> }>) {
            for (const header of Object.values(response.headers ?? {})) {
              if (header.schema?.[ALWAYS_SENT] !== true) continue
              delete header.schema[ALWAYS_SENT]
              header.required = true
            }
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
  // Swagger UI draws its own top-bar logo, an inline SVG with a <style>, before ours replaces it: that
  // style's hash lets it through instead of a CSP error on every load (test/browser/swagger-ui.test.ts).
  await fastify.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    transformStaticCSP: header => header.replace("style-src 'self' https:", `style-src 'self' https: '${SWAGGER_UI_LOGO_STYLE}'`)
  })
}, { name: 'tollgate-swagger', fastify: '5.x' })

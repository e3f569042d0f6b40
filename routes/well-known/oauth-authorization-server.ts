import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { AuthorizationServerMetadataSchema, alwaysSent, documented } from '../../src/schemas.js'

export interface OAuthMetadataOptions {
  /** Where Tollgate's routes are mounted in the app (the plugin's prefix), '' for the root. */
  mountPath: string
}

/** RFC 8414 metadata: where the endpoints are, and what they support. */
const oauthMetadataRoute: FastifyPluginAsyncTypebox<OAuthMetadataOptions> = async function oauthMetadataRoute (fastify, { mountPath }) {
  const { config } = fastify.tollgate
  // Absolute URLs start with PUBLIC_URL and the mount path, else with the issuer when it is a URL
  // (and the mount path, unless the issuer's path already ends with it, as when the issuer names
  // Tollgate's own root); only without either are they taken from the request (then never cached,
  // since the Host header is the client's word).
  const issuerBase = /^https?:\/\//.test(config.JWT_ISSUER) ? config.JWT_ISSUER.replace(/\/+$/, '') : undefined
  const configuredBase = config.PUBLIC_URL
    ? config.PUBLIC_URL + mountPath
    : issuerBase && (issuerBase.endsWith(mountPath) ? issuerBase : issuerBase + mountPath)

  function metadata (root: string) {
    const url = (path: string) => `${root}${path}`
    return {
      issuer: config.JWT_ISSUER,
      jwks_uri: url('/.well-known/jwks.json'),
      token_endpoint: url('/auth/refresh'),
      // Public clients: the refresh grant authenticates with the refresh token alone.
      token_endpoint_auth_methods_supported: ['none'],
      grant_types_supported: ['refresh_token'],
      response_types_supported: [],
      revocation_endpoint: url('/auth/revoke'),
      revocation_endpoint_auth_methods_supported: ['none'],
      ...(config.INTROSPECTION_CLIENTS && {
        introspection_endpoint: url('/auth/introspect'),
        introspection_endpoint_auth_methods_supported: ['client_secret_basic']
      })
    }
  }
  const fixed = configuredBase ? metadata(configuredBase) : undefined

  fastify.get('/oauth-authorization-server', {
    schema: {
      tags: ['well-known'],
      summary: 'Authorization server metadata (RFC 8414)',
      operationId: 'getAuthorizationServerMetadata',
      description: 'The issuer, the JWKS and the token, revocation and (when configured) introspection endpoints, for clients that discover them.',
      security: [],
      response: {
        200: documented(Type.Ref(AuthorizationServerMetadataSchema), 'The metadata document', {
          'Cache-Control': alwaysSent(Type.String({ description: 'public, max-age=300; no-store when the URLs come from the request' }))
        })
      }
    }
  }, async function oauthMetadata (request: FastifyRequest, reply) {
    if (fixed) {
      reply.header('cache-control', 'public, max-age=300')
      return fixed
    }
    reply.header('cache-control', 'no-store')
    return metadata(`${request.protocol}://${request.host}${mountPath}`)
  })
}

export default oauthMetadataRoute

import fastifyJwt from '@fastify/jwt'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import type { KeyMaterial, PublicJwk } from '../src/keys.js'
import { ACCESS_REQUIRED, ACCESS_TOKEN_TYP, createAccessTokenVerifier } from '../src/access-token-verifier.js'
import { LEEWAY_SECONDS } from '../src/jwt-checks.js'
import { REFRESH_TOKEN_TYP, createTokenService, type TokenService } from '../src/token-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    tokens: TokenService
    jwks: { keys: PublicJwk[] }
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    namespaces: 'access' | 'refresh'
  }
}

export interface TokensPluginOptions {
  config: Config
  keys: KeyMaterial
}

// @fastify/jwt takes expiresIn in seconds; fast-jwt takes clockTolerance in milliseconds.
// Claims fast-jwt must find before anything else is checked (RFC 8725 §3.9).
const REFRESH_REQUIRED = ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid']

/**
 * Two @fastify/jwt namespaces, one per token type, each with its own key, pinned algorithm, typ
 * and audience, so an access token can never pass as a refresh token or the other way round.
 * Access tokens are signed here and verified by src/access-token-verifier.ts, which apps that only
 * verify use too (plugins/verify-only.ts).
 */
export default fp(async function tokensPlugin (fastify, { config, keys }: TokensPluginOptions) {
  const access = keys.access
  const refreshAudience = `${config.JWT_ISSUER}#refresh`
  const leeway = LEEWAY_SECONDS * 1000 // fast-jwt takes milliseconds

  await fastify.register(fastifyJwt, {
    namespace: 'access',
    decoratorName: 'accessTokenClaims',
    secret: access.alg === 'EdDSA' ? { private: access.privateKey, public: access.publicKey } : access.secret,
    sign: { algorithm: access.alg, kid: access.kid, header: { alg: access.alg, typ: ACCESS_TOKEN_TYP }, iss: config.JWT_ISSUER, aud: config.JWT_AUDIENCE, expiresIn: config.ACCESS_TOKEN_TTL },
    // Tollgate verifies with createAccessTokenVerifier (below); @fastify/jwt still exposes this
    // verifier (request.accessJwtVerify), so it is pinned just as strictly.
    verify: {
      algorithms: [access.alg],
      checkTyp: ACCESS_TOKEN_TYP,
      allowedIss: config.JWT_ISSUER,
      allowedAud: config.JWT_AUDIENCE,
      requiredClaims: ACCESS_REQUIRED,
      clockTolerance: leeway
    }
  })
  await fastify.register(fastifyJwt, {
    namespace: 'refresh',
    decoratorName: 'refreshTokenClaims',
    secret: keys.refreshSecret,
    sign: { algorithm: 'HS256', header: { alg: 'HS256', typ: REFRESH_TOKEN_TYP }, iss: config.JWT_ISSUER, aud: refreshAudience },
    verify: {
      algorithms: ['HS256'],
      checkTyp: REFRESH_TOKEN_TYP,
      allowedIss: config.JWT_ISSUER,
      allowedAud: refreshAudience,
      requiredClaims: REFRESH_REQUIRED,
      clockTolerance: leeway,
      complete: true
    }
  })

  fastify.decorate('tokens', createTokenService({
    config,
    accessJwt: fastify.jwt.access,
    refreshJwt: fastify.jwt.refresh,
    verifyAccessToken: createAccessTokenVerifier({
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      keys: [
        access.alg === 'EdDSA'
          ? { alg: 'EdDSA', kid: access.kid, publicKey: access.publicKey }
          : { alg: 'HS256', kid: access.kid, secret: access.secret },
        ...keys.otherPublicKeys.map(key => ({ alg: 'EdDSA' as const, kid: key.kid, publicKey: key.publicKey }))
      ],
      maxLifetime: config.ACCESS_TOKEN_TTL
    })
  }))
  // Only public keys are ever published; an HS256 deployment publishes none. The signing key first.
  fastify.decorate('jwks', { keys: access.alg === 'EdDSA' ? [access.publicJwk, ...keys.otherPublicKeys.map(key => key.publicJwk)] : [] })
}, { name: 'tokens', dependencies: ['config'] })

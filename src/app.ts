import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Config } from './config.js'
import { loadKeys } from './keys.js'
import { sharedSchemas } from './schemas.js'
import configPlugin from '../plugins/config.js'
import errorsPlugin from '../plugins/errors.js'
import httpSecurityPlugin from '../plugins/http-security.js'
import ormPlugin from '../plugins/orm.js'
import redisPlugin from '../plugins/redis.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import passwordsPlugin from '../plugins/passwords.js'
import tokensPlugin from '../plugins/tokens.js'
import tokenStorePlugin from '../plugins/token-store.js'
import authPlugin from '../plugins/auth.js'
import swaggerPlugin from '../plugins/swagger.js'
import authRoutes from '../routes/auth/index.js'
import usersRoutes from '../routes/users/index.js'
import wellKnownRoutes from '../routes/well-known/index.js'
import healthRoutes from '../routes/health/index.js'

export interface AppOptions {
  config: Config
}

/** The whole Tollgate service, registered in boot order. Never listens: see server.ts. */
export default async function buildApp (fastify: FastifyInstance, { config }: AppOptions) {
  const keys = await loadKeys(config)
  if (keys.generated.length > 0) {
    fastify.log.warn({ files: keys.generated }, 'generated signing keys; set ACCESS_TOKEN_PRIVATE_KEY and REFRESH_TOKEN_SECRET in production')
  }

  // 1. Configuration, the shape of every error, security headers and CORS.
  await fastify.register(configPlugin, { config })
  await fastify.register(errorsPlugin)
  await fastify.register(httpSecurityPlugin)
  for (const schema of sharedSchemas) fastify.addSchema(schema)

  // 2. External resources: servers when their URLs are set, the embedded default otherwise.
  await fastify.register(ormPlugin, config.DATABASE_URL
    ? { url: config.DATABASE_URL }
    : { pgliteDir: join(config.DATA_DIR, 'pglite') })
  if (config.REDIS_URL) await fastify.register(redisPlugin, { url: config.REDIS_URL })

  // 3. Brute-force defences: rate limits (on Redis when present) and bounded password hashing.
  await fastify.register(rateLimitPlugin)
  await fastify.register(passwordsPlugin)

  // 4. Tokens, their store, and the authenticate hook built on both.
  await fastify.register(tokensPlugin, { config, keys })
  await fastify.register(tokenStorePlugin)
  await fastify.register(authPlugin, { verifyAccessToken: fastify.tokens.verifyAccessToken, isAccessAllowed: fastify.tokenStore.isAccessAllowed })

  // 5. Docs, registered before the routes so it sees them all.
  await fastify.register(swaggerPlugin)

  // 6. Routes.
  await fastify.register(authRoutes, { prefix: '/auth' })
  await fastify.register(usersRoutes, { prefix: '/users' })
  await fastify.register(wellKnownRoutes, { prefix: '/.well-known' })
  await fastify.register(healthRoutes, { prefix: '/health' })
}

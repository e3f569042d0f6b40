import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { AjvCompiler } from '@fastify/ajv-compiler'
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { openDatabase, type Database } from '../src/database.js'
import { loadKeys, publicJwks, type PublicJwk } from '../src/keys.js'
import { OptionsError, configFromOptions, type TollgateOptions } from '../src/options.js'
import { logSafeError } from '../src/log-safe-error.js'
import { createMailer } from '../src/mail/mailer.js'
import { isLoopback, parseSmtpUrl } from '../src/mail/smtp-url.js'
import { createPasswordHasher, type PasswordHasher } from '../src/password.js'
import { createCsrfTokens, plainHttpOrigins, type CsrfTokens } from '../src/refresh-cookie.js'
import { createAccountRecovery, type AccountRecovery } from '../src/recovery/account-recovery.js'
import { createLinkTokenRepository } from '../src/recovery/link-token-repository.js'
import { closeRedisClient, createRedisClient, isCluster, waitForFirstConnection, type RedisClient } from '../src/redis-client.js'
import { BODY_LIMIT, VALIDATION_OPTIONS, sharedSchemas } from '../src/schemas.js'
import { createSessionService, type SessionService } from '../src/sessions/session-service.js'
import type { TokenStore } from '../src/token-store/index.js'
import { createMemoryTokenStore } from '../src/token-store/memory.js'
import { createRedisTokenStore } from '../src/token-store/redis.js'
import { withReplicaAcknowledgement } from '../src/token-store/replica-acknowledged.js'
import { createTokenService, type TokenService } from '../src/tokens/token-service.js'
import { createUserRepository, type UserRepository } from '../src/user-repository.js'
import authenticatePlugin from './authenticate.js'
import errorsPlugin from './errors.js'
import httpSecurityPlugin from './http-security.js'
import jsonBodiesPlugin from './json-bodies.js'
import { createRateLimits, type RateLimits } from './rate-limit.js'
import swaggerPlugin from './swagger.js'
import authRoutes from '../routes/auth/index.js'
import healthRoutes from '../routes/health/index.js'
import usersRoutes from '../routes/users/index.js'
import wellKnownRoutes from '../routes/well-known/index.js'
import oauthMetadataRoute from '../routes/well-known/oauth-authorization-server.js'

export type { TollgateOptions } from '../src/options.js'
export type { AuthenticatedUser } from './authenticate.js'

/** What Tollgate decorates the app with, besides `authenticate` and `request.user`: one namespace. */
export interface Tollgate {
  /** The validated settings, with every default filled in. */
  config: Config
  users: UserRepository
  /** The grants and sessions: login, refresh, logout, password change, account deletion. */
  sessions: SessionService
  /** Email verification and password reset by mailed links. */
  recovery: AccountRecovery
  tokens: TokenService
  tokenStore: TokenStore
  passwords: PasswordHasher
  /** The public keys that verify access tokens, as GET /.well-known/jwks.json serves them. */
  jwks: { keys: PublicJwk[] }
  databaseKind: 'postgresql' | 'pglite'
  /** The migrations this version needs that the database lacks: `/health/ready` is 503 while there are any. */
  pendingMigrations (): Promise<string[]>
  rateLimits: RateLimits
  /** The CSRF tokens of cookie mode (REFRESH_COOKIE), bound to a session. */
  csrfTokens: CsrfTokens
}

declare module 'fastify' {
  interface FastifyInstance {
    tollgate: Tollgate
  }
}

/**
 * The whole Tollgate auth server, registered in boot order into a host app (the standalone server
 * is one such host). The host gets `authenticate`, `request.user` and `app.tollgate`; everything
 * else (error handler, security headers, CORS, validation, docs, routes) lives in an encapsulated
 * scope under `prefix`, so the host's own routes keep their own.
 */
async function tollgate (fastify: FastifyInstance, options: TollgateOptions) {
  // 1. Settings and keys: a bad option fails here, at registration, naming the option.
  const config = configFromOptions(options)
  const keys = await loadKeys(config)
  if (keys.generated.length > 0) {
    fastify.log.warn({ files: keys.generated }, 'generated signing keys; set the access and refresh keys in production')
  } else if (keys.files.length > 0 && (config.REDIS_URL || config.REDIS_CLUSTER_NODES || config.REDIS_SENTINELS || typeof options.redis === 'object' || options.tokenStore)) {
    // A shared token store means other instances may serve the same users: each one's own generated
    // keys would refuse the others' tokens.
    fastify.log.warn({ files: keys.files }, 'signing keys read from DATA_DIR: every instance that shares this token store needs the same keys; set the access and refresh keys (ACCESS_TOKEN_PRIVATE_KEY, REFRESH_TOKEN_SECRET)')
  }
  const corsOrigins = config.CORS_ORIGINS.split(',').filter(Boolean)
  const insecureOrigins = config.REFRESH_COOKIE ? plainHttpOrigins(corsOrigins) : []
  if (insecureOrigins.length > 0) {
    fastify.log.warn({ origins: insecureOrigins }, 'cookie mode with http:// CORS origins: CORS lets their pages, which anyone on the network path can rewrite, send the refresh cookie and read the tokens answered; use https:// origins (loopback ones are fine for development)')
  }

  // 2. Resources: servers when given, the embedded default otherwise. Each closes what it opened.
  // The database opens while the rest registers, and ready() waits for it in onReady: a fresh
  // PGlite takes 3-4 s to create, which must not eat into the host's 10 s per-plugin timeout.
  let database: Database | undefined
  const opening = openDatabase(config.DATABASE_URL ? { url: config.DATABASE_URL } : { pgliteDir: join(config.DATA_DIR, 'pglite') })
    .then(async function migrate (opened) {
      database = opened
      if (config.MIGRATE_AT_START) {
        await opened.migrate()
        return
      }
      const pending = await opened.pendingMigrations().catch(() => [])
      if (pending.length > 0) {
        fastify.log.warn({ pending }, 'MIGRATE_AT_START=false and the database lacks migrations: not ready (503 on /health/ready) until `npm run migrate` applies them')
      }
    })
  // ready() rejects with it too (onReady, below), unless the host's pluginTimeout ends the wait first.
  // Cleaned: a driver's or URL parser's error can carry DATABASE_URL, password included.
  opening.catch((err: unknown) => fastify.log.error({ err: logSafeError(err) }, 'tollgate: the database could not be opened'))
  fastify.addHook('onReady', async function databaseOpened () { await opening })
  fastify.addHook('onClose', async function closeDatabase () {
    await opening.catch(() => {})
    await database?.close()
  })

  // One Redis (REDIS_URL), a Cluster or the master behind Sentinel, or none (the embedded default).
  let redis: RedisClient | undefined
  const onRedisError = (err: Error) => fastify.log.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'redis connection error')
  const created = createRedisClient(config, onRedisError)
  if (created) {
    fastify.addHook('onClose', async function closeRedis () { closeRedisClient(created) })
    redis = created
  } else if (typeof options.redis === 'object') {
    // The host's client: used, never closed.
    redis = options.redis
    if (!failsFast(redis)) {
      fastify.log.warn('tollgate: the Redis client queues commands while disconnected or has no commandTimeout, so a Redis outage makes requests wait instead of answering 503; create it with redisClientOptions')
    }
  }
  // With Redis down or hung the app boots anyway, not ready (503 on /health/ready).
  if (redis) await waitForFirstConnection(redis)

  const storeOptions = {
    idleTtl: config.REFRESH_IDLE_TTL * 1000,
    reuseInterval: config.REFRESH_REUSE_INTERVAL * 1000,
    absoluteTtl: config.REFRESH_TOKEN_TTL * 1000
  }
  let tokenStore: TokenStore
  if (options.tokenStore) {
    tokenStore = options.tokenStore
  } else {
    if (redis) {
      tokenStore = createRedisTokenStore({ redis, prefix: config.REDIS_KEY_PREFIX, ...storeOptions })
      if (config.REDIS_WAIT_REPLICAS > 0) {
        if (isCluster(redis)) throw new OptionsError(['redisWaitReplicas: not supported with a Redis Cluster client (WAIT would have to reach the master of each user\'s slot)'])
        // A second connection, Tollgate's own, for revocations and their WAIT (which blocks it): made
        // like the first (error listener, Sentinel restart included), or a duplicate of a host's.
        const revocationRedis = (created && createRedisClient(config, onRedisError)) || redis.duplicate()
        fastify.addHook('onClose', async function closeRevocationRedis () { closeRedisClient(revocationRedis) })
        await waitForFirstConnection(revocationRedis)
        const revocations = createRedisTokenStore({ redis: revocationRedis, prefix: config.REDIS_KEY_PREFIX, ...storeOptions })
        tokenStore = withReplicaAcknowledgement(tokenStore, revocations, revocationRedis, config.REDIS_WAIT_REPLICAS)
      }
    } else {
      await mkdir(config.DATA_DIR, { recursive: true, mode: 0o700 })
      tokenStore = createMemoryTokenStore({ ...storeOptions, snapshotPath: join(config.DATA_DIR, 'token-store.json') })
      fastify.log.warn('no Redis: the in-process token store serves this one process only (sessions are kept in DATA_DIR across graceful restarts, lost on a crash). Production needs Redis.')
    }
    const ownStore = tokenStore
    fastify.addHook('onClose', async function closeTokenStore () { await ownStore.close() })
  }

  // 3. Services: passwords, tokens, users, and the grants built on them.
  const passwords = createPasswordHasher({ concurrency: config.PASSWORD_HASH_CONCURRENCY, queue: config.PASSWORD_HASH_QUEUE })
  const tokens = createTokenService({
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    keys,
    accessTokenTtl: config.ACCESS_TOKEN_TTL,
    refreshIdleTtl: config.REFRESH_IDLE_TTL
  })
  function orm () {
    if (!database) throw new Error('tollgate: the database is not open yet')
    return database.orm
  }
  const users = createUserRepository(orm)
  const clock = options.clock ?? Date.now
  const linkTokens = createLinkTokenRepository(orm, fastify.log)
  const sessions = createSessionService({
    config,
    users,
    passwords,
    tokens,
    tokenStore,
    log: fastify.log,
    supersedeResetLinks: (userId) => linkTokens.supersede({ userId, purpose: 'reset_password', now: clock() })
  })
  // Mail: SMTP_URL was checked with the configuration. Without it, the development outbox (each mail,
  // link and token included, written to the log) serves the embedded default only, i.e. no
  // DATABASE_URL: whoever reads a real deployment's logs could otherwise reset any password. With
  // DATABASE_URL and no SMTP_URL, mail is off: every mail is dropped, with a warning.
  const smtp = config.SMTP_URL === undefined ? undefined : parseSmtpUrl(config.SMTP_URL, { allowPlaintext: !config.SMTP_REQUIRE_TLS }) ?? undefined
  const devOutbox = smtp === undefined && config.DATABASE_URL === undefined
  const mailer = createMailer({ smtp, devOutbox, from: config.MAIL_FROM, log: fastify.log })
  if (devOutbox) fastify.log.warn('no SMTP_URL: mails are not sent but written to this log at info (the development outbox of the embedded default, links and their tokens included). Production needs SMTP.')
  else if (!smtp) fastify.log.warn('no SMTP_URL: mail is off. Verification and password-reset mails are dropped (each drop is logged as a warning), so nobody can verify an address or reset a forgotten password. Set SMTP_URL.')
  if (smtp && !config.SMTP_REQUIRE_TLS && !smtp.secure && !isLoopback(smtp.host)) fastify.log.warn('SMTP_REQUIRE_TLS=false: mails, reset links included, may reach the SMTP relay in clear text')
  if (isPlainHttpElsewhere(config.APP_URL)) fastify.log.warn('APP_URL is http:// on a host other than this machine: mailed links, and the tokens in them, travel in clear text. Use https://')
  const rateLimits = createRateLimits(config, redis)
  const recovery = createAccountRecovery({
    config,
    users,
    linkTokens,
    passwords,
    tokenStore,
    mailer,
    clock,
    verificationMailTo: rateLimits.verificationMailTo,
    log: fastify.log
  })
  // Added after the database's hook, so it runs before it (onClose runs last-added first): the work
  // after answers finishes while the database is still open, then the mail transport closes.
  fastify.addHook('onClose', async function closeMail () { await recovery.close() })
  fastify.decorate('tollgate', {
    config,
    users,
    sessions,
    recovery,
    tokens,
    tokenStore,
    passwords,
    jwks: publicJwks(keys),
    databaseKind: config.DATABASE_URL ? 'postgresql' : 'pglite',
    pendingMigrations: async () => {
      if (!database) throw new Error('tollgate: the database is not open yet')
      return await database.pendingMigrations()
    },
    rateLimits,
    csrfTokens: createCsrfTokens(keys.refreshSecret)
  } satisfies Tollgate)

  // 4. What the host's routes get: `authenticate` and `request.user`.
  await fastify.register(authenticatePlugin, {
    verifyAccessToken: tokens.verifyAccessToken,
    // A store of the host's may be a class: call its method on it.
    isAccessAllowed: (access) => tokenStore.isAccessAllowed(access)
  })

  // 5. Tollgate's own HTTP surface, encapsulated under the prefix.
  await fastify.register(tollgateHttp, {
    prefix: options.prefix ?? '',
    corsOrigins,
    refreshCookie: config.REFRESH_COOKIE,
    docs: options.docs === true,
    health: options.health === true
  })
}

/** Whether a URL is plain http:// to another machine (links in mail to it can be read on the way). */
function isPlainHttpElsewhere (url: string): boolean {
  const { protocol, hostname } = new URL(url)
  return protocol === 'http:' && !isLoopback(hostname.replace(/^\[(.*)\]$/, '$1'))
}

/** Whether a host's ioredis client answers an outage with an error rather than a wait (see redisClientOptions). */
function failsFast (client: RedisClient): boolean {
  type Options = { enableOfflineQueue?: boolean, commandTimeout?: number, redisOptions?: { commandTimeout?: number } }
  const options = (client as { options?: Options }).options
  // A Cluster client keeps each node's commandTimeout in redisOptions.
  const commandTimeout = options?.commandTimeout ?? options?.redisOptions?.commandTimeout
  return options?.enableOfflineQueue === false && typeof commandTimeout === 'number'
}

interface HttpOptions {
  corsOrigins: string[]
  /** Cookie mode (REFRESH_COOKIE): CORS with credentials, and the cookie security schemes in the docs. */
  refreshCookie: boolean
  docs: boolean
  health: boolean
}

async function tollgateHttp (scope: FastifyInstance, { corsOrigins, refreshCookie, docs, health }: HttpOptions) {
  // The shape of every error, security headers and CORS: for these routes only.
  await scope.register(errorsPlugin)
  await scope.register(httpSecurityPlugin, { corsOrigins, credentials: refreshCookie })

  // Bodies, validation and body size as Tollgate defines them, whatever the host's parsers, ajv and bodyLimit.
  await scope.register(jsonBodiesPlugin)
  const externalSchemas = Object.fromEntries(sharedSchemas.map(schema => [schema.$id as string, schema]))
  scope.setValidatorCompiler(AjvCompiler()(externalSchemas, { customOptions: VALIDATION_OPTIONS }) as FastifySchemaCompiler<unknown>)
  scope.addHook('onRoute', function limitBody (route) { route.bodyLimit ??= BODY_LIMIT })
  for (const schema of sharedSchemas) scope.addSchema(schema)

  // Docs, registered before the routes so that they see them all. Without them, Tollgate's routes
  // stay out of a host's own @fastify/swagger document too (its onRoute hook sees them).
  if (docs) {
    // Two @fastify/swagger in one app break the host's document (a TypeError in its swagger()).
    if (scope.hasDecorator('swagger')) throw new OptionsError(['docs: your app registers @fastify/swagger already, and one app cannot serve two; leave docs unset'])
    await scope.register(swaggerPlugin, { refreshCookie })
  } else {
    scope.addHook('onRoute', function hideFromHostDocs (route) { route.schema = { ...route.schema, hide: true } })
  }

  await scope.register(authRoutes, { prefix: '/auth' })
  await scope.register(usersRoutes, { prefix: '/users' })
  await scope.register(wellKnownRoutes, { prefix: '/.well-known' })
  await scope.register(oauthMetadataRoute, { prefix: '/.well-known', mountPath: scope.prefix })
  if (health) await scope.register(healthRoutes, { prefix: '/health' })
}

const tollgatePlugin = fp(tollgate, { name: 'tollgate', fastify: '5.x' })

export default tollgatePlugin
export { tollgatePlugin as tollgate }
export { REDIS_CLIENT_OPTIONS as redisClientOptions, REDIS_CLUSTER_OPTIONS as redisClusterOptions } from '../src/redis-client.js'
export { OptionsError } from '../src/options.js'

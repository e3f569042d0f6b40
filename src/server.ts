import { pathToFileURL } from 'node:url'
import closeWithGrace from 'close-with-grace'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import { ConfigError, loadConfig, type Config } from './config.js'
import type { TollgateOptions } from './options.js'
import { logSafeError } from './log-safe-error.js'
import { BODY_LIMIT, VALIDATION_OPTIONS } from './schemas.js'
import tollgate from '../plugins/tollgate.js'
import { RETRY_AFTER_SECONDS, handleError, handleNotFound } from '../plugins/errors.js'
import { helmetHeaders } from '../plugins/http-security.js'

/*
 * The standalone server: a thin host of the tollgate plugin, configured from the environment.
 * `node dist/src/server.js` (npm start) runs it; tests build it with buildServer.
 */

/** Never logged: credentials in headers and every token or password field of a body or reply. */
const SECRET_FIELDS = ['password', 'current_password', 'new_password', 'access_token', 'refresh_token', 'token', 'client_secret']
const SECRET_HEADERS = ['authorization', 'cookie']
export const REDACTED_PATHS = [
  'res.headers["set-cookie"]',
  // Headers, wherever a log call puts them.
  ...SECRET_HEADERS.flatMap(h => [`req.headers.${h}`, `headers.${h}`, `*.headers.${h}`]),
  // Token and password fields at the top level, in a body, or one level deeper.
  ...SECRET_FIELDS.flatMap(f => [f, `*.${f}`, `*.*.${f}`])
]

/**
 * With LOG_LEVEL=silent, each request's logger is the server's own: nothing is logged, so there is
 * nothing to bind a request id to, and a pino child costs ~6 µs a request here because the redaction's
 * wildcard paths run over its bindings. A route with a log level or serializers of its own still
 * gets a child.
 */
const silentChildLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = function (logger, bindings, options) {
  return options.level === undefined && options.serializers === undefined ? logger : logger.child(bindings, options)
}

export function parseTrustProxy (value: string): boolean | number | string {
  if (value === '') return false
  if (value === 'true') return true
  if (/^\d+$/.test(value)) return Number(value)
  return value
}

/** The Fastify options of the server, shared with the tests so both validate alike. */
export function serverOptions (config: Config, overrides: FastifyServerOptions = {}, logStream?: DestinationStream): FastifyServerOptions {
  return {
    logger: { level: config.LOG_LEVEL, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, ...(logStream && { stream: logStream }) },
    ...(config.LOG_LEVEL === 'silent' && { childLoggerFactory: silentChildLogger }),
    // A hop count is valid for proxy-addr, though Fastify's type omits it.
    trustProxy: parseTrustProxy(config.TRUST_PROXY) as boolean | string,
    // As on Tollgate's own routes, for whatever else the server answers.
    bodyLimit: BODY_LIMIT,
    requestTimeout: 30_000,
    // Fastify's own 503 while closing has no `code` and no Retry-After: buildServer answers instead.
    return503OnClosing: false,
    // The router answers bad URLs and over-long parameters before any plugin runs: same error shape.
    frameworkErrors: handleError,
    // The embedded default compiles PostgreSQL (WASM) and migrates at boot: slow on a busy machine.
    pluginTimeout: 120_000,
    ajv: { customOptions: VALIDATION_OPTIONS },
    ...overrides
  }
}

/** The plugin's options from the server's configuration: the same settings, plus docs and health on. */
export function tollgateOptions (config: Config): TollgateOptions {
  return {
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    databaseUrl: config.DATABASE_URL,
    migrateAtStart: config.MIGRATE_AT_START,
    redis: config.REDIS_URL,
    redisKeyPrefix: config.REDIS_KEY_PREFIX,
    redisClusterNodes: config.REDIS_CLUSTER_NODES,
    redisSentinels: config.REDIS_SENTINELS,
    redisSentinelName: config.REDIS_SENTINEL_NAME,
    redisUsername: config.REDIS_USERNAME,
    redisPassword: config.REDIS_PASSWORD,
    redisSentinelUsername: config.REDIS_SENTINEL_USERNAME,
    redisSentinelPassword: config.REDIS_SENTINEL_PASSWORD,
    redisTls: config.REDIS_TLS,
    redisTlsCa: config.REDIS_TLS_CA,
    redisWaitReplicas: config.REDIS_WAIT_REPLICAS,
    dataDir: config.DATA_DIR,
    accessTokenAlg: config.ACCESS_TOKEN_ALG,
    accessTokenPrivateKey: config.ACCESS_TOKEN_PRIVATE_KEY,
    accessTokenPublicKeys: config.ACCESS_TOKEN_PUBLIC_KEYS,
    accessTokenSecret: config.ACCESS_TOKEN_SECRET,
    refreshTokenSecret: config.REFRESH_TOKEN_SECRET,
    accessTokenTtl: config.ACCESS_TOKEN_TTL,
    refreshTokenTtl: config.REFRESH_TOKEN_TTL,
    refreshIdleTtl: config.REFRESH_IDLE_TTL,
    refreshReuseInterval: config.REFRESH_REUSE_INTERVAL,
    refreshCookie: config.REFRESH_COOKIE,
    corsOrigins: config.CORS_ORIGINS,
    rateLimitMax: config.RATE_LIMIT_MAX,
    rateLimitWindow: config.RATE_LIMIT_WINDOW,
    accountRateLimitMax: config.ACCOUNT_RATE_LIMIT_MAX,
    accountRateLimitWindow: config.ACCOUNT_RATE_LIMIT_WINDOW,
    passwordHashConcurrency: config.PASSWORD_HASH_CONCURRENCY,
    passwordHashQueue: config.PASSWORD_HASH_QUEUE,
    publicUrl: config.PUBLIC_URL,
    introspectionClients: config.INTROSPECTION_CLIENTS,
    introspectionRateLimitMax: config.INTROSPECTION_RATE_LIMIT_MAX,
    smtpUrl: config.SMTP_URL,
    smtpRequireTls: config.SMTP_REQUIRE_TLS,
    mailFrom: config.MAIL_FROM,
    appUrl: config.APP_URL,
    requireVerifiedEmail: config.REQUIRE_VERIFIED_EMAIL,
    docs: true,
    health: true
  }
}

export interface BuildServerOptions {
  /** Fastify options over the server's own. */
  server?: FastifyServerOptions
  /** Where the server's logger writes (standard output by default). */
  logStream?: DestinationStream
  /** Plugin options that are no configuration variable, such as `clock` (tests). */
  tollgate?: Pick<TollgateOptions, 'clock'>
}

/** The server, not yet listening: Fastify with the server's options, its 404 and error shapes, and tollgate. */
export async function buildServer (config: Config, options: BuildServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(serverOptions(config, options.server, options.logStream))
  // The host's own handlers: for what no Tollgate route answers (unknown URLs, the router's errors).
  // Tollgate sets security headers on its own routes; the server's 404s get them here.
  const securityHeaders = helmetHeaders()
  app.setErrorHandler(handleError)
  app.setNotFoundHandler(function notFound (request, reply) {
    reply.headers(securityHeaders)
    handleNotFound(request, reply)
  })
  // From close() on, a request still arriving on an open keep-alive connection is refused in the
  // documented error shape, so that its client retries elsewhere (Fastify adds `Connection: close`).
  let closing = false
  app.addHook('preClose', async function refuseNewRequests () { closing = true })
  // A callback hook: no promise per request on the hot path.
  app.addHook('onRequest', function refuseWhileClosing (request, reply, done) {
    if (!closing) return done()
    reply.code(503).headers(securityHeaders).header('retry-after', RETRY_AFTER_SECONDS)
      .send({ statusCode: 503, code: 'SERVICE_UNAVAILABLE', error: 'Service Unavailable', message: 'The server is shutting down; retry' })
  })
  await app.register(tollgate, { ...tollgateOptions(config), ...options.tollgate })
  return app
}

async function main () {
  let config: Config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(1)
  }

  let app: FastifyInstance | undefined
  try {
    app = await buildServer(config)
    const started = app
    closeWithGrace({ delay: 10_000 }, async function shutdown ({ signal, err }) {
      if (err) started.log.error({ err }, 'server closing after an error')
      else started.log.info({ signal }, 'server closing')
      await started.close()
    })
    const address = await app.listen({ host: config.HOST, port: config.PORT })
    app.log.info(`API docs at ${address}/docs`)
  } catch (err) {
    // A failed start (a migration, an unreachable server, a bad option, a taken port) is one log
    // line and exit code 1, not an uncaught rejection's stack dump.
    const message = `server could not start: ${err instanceof Error ? err.message : String(err)}`
    if (app) app.log.fatal({ err: logSafeError(err) }, message)
    else console.error(message)
    await app?.close().catch(() => {})
    process.exit(1)
  }
}

// Run when started as a program (npm start), not when a test imports buildServer.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main()

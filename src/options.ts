import { ConfigError, loadConfig, type Config, type ConfigInput } from './config.js'
import type { RedisClient } from './redis-client.js'
import type { TokenStore } from './token-store/index.js'

/**
 * The options of the `tollgate` plugin: the server's configuration in camelCase (the variable each
 * mirrors is named in its comment; README.md lists them all), plus what only a host can hand over.
 * Unset options take the server's defaults. With neither `databaseUrl` nor `redis`, Tollgate runs on
 * its embedded default: PGlite and an in-process token store under `dataDir`.
 */
export interface TollgateOptions {
  /** URL prefix of every Tollgate route: `/id` serves `/id/auth/login`, `/id/.well-known/jwks.json`… Default none. */
  prefix?: string | undefined
  /** The exact `iss` of every token (JWT_ISSUER). Default `tollgate`. */
  issuer?: string | undefined
  /** The `aud` of access tokens (JWT_AUDIENCE). Default `tollgate-api`. */
  audience?: string | undefined
  /** A postgres:// URL for the users (DATABASE_URL). Unset: PGlite under `dataDir`. */
  databaseUrl?: string | undefined
  /**
   * Apply pending migrations while the app boots, `app.ready()` waiting for them (MIGRATE_AT_START).
   * Default true. On PostgreSQL, instances booting together take turns (an advisory lock, waited
   * for up to 60 s). Turn it off when your deployment runs `npm run migrate` as a step of its own;
   * until that has run, requests that reach the users' table fail.
   */
  migrateAtStart?: boolean | undefined
  /**
   * Redis for sessions, revocation and rate limits: a redis:// URL (REDIS_URL; Tollgate creates and
   * closes the client) or an ioredis 5 or 6 client you own, such as @fastify/redis's `app.redis`
   * (create it with `redisClientOptions` so an outage answers 503 at once). Unset: in-process store.
   */
  redis?: string | RedisClient | undefined
  /**
   * A Redis Cluster instead of one Redis (REDIS_CLUSTER_NODES): seed nodes as `host:port` strings
   * (or one comma-separated string). Tollgate creates and closes an ioredis Cluster client; to hand
   * over a Cluster client of your own, pass it as `redis`. Exclusive with `redis` and `redisSentinels`.
   */
  redisClusterNodes?: string | string[] | undefined
  /**
   * Redis behind Sentinel (REDIS_SENTINELS): the sentinels as `host:port` strings (or one
   * comma-separated string), with `redisSentinelName`. Tollgate asks them for the master, and
   * follows a failover without a restart. Exclusive with `redis` and `redisClusterNodes`.
   */
  redisSentinels?: string | string[] | undefined
  /** The master group name the sentinels monitor (REDIS_SENTINEL_NAME); required with `redisSentinels`. */
  redisSentinelName?: string | undefined
  /** ACL user of the cluster nodes, or of the master and replicas behind the sentinels (REDIS_USERNAME). */
  redisUsername?: string | undefined
  /** Password of the cluster nodes, or of the master and replicas behind the sentinels (REDIS_PASSWORD). */
  redisPassword?: string | undefined
  /** ACL user of the sentinels themselves (REDIS_SENTINEL_USERNAME). */
  redisSentinelUsername?: string | undefined
  /** Password of the sentinels themselves (REDIS_SENTINEL_PASSWORD). */
  redisSentinelPassword?: string | undefined
  /** TLS to the cluster nodes, or to the sentinels and their master and replicas (REDIS_TLS). Default false. */
  redisTls?: boolean | undefined
  /** CA certificates (PEM) the Redis servers' certificates chain to, with `redisTls` (REDIS_TLS_CA). Default: Node's CAs. */
  redisTlsCa?: string | undefined
  /**
   * Replicas that must hold each revocation (logout, logout-all, ending a session, revoking a token)
   * before it is acknowledged, checked with Redis WAIT (REDIS_WAIT_REPLICAS). Without them a failover
   * to a replica that was behind can bring a revoked session back. Only with `redis` as a URL or
   * `redisSentinels`. Default 0.
   */
  redisWaitReplicas?: number | undefined
  /** Start of every Redis key (REDIS_KEY_PREFIX), so deployments can share a Redis. Default `tollgate`. */
  redisKeyPrefix?: string | undefined
  /** A token store of your own, instead of the Redis or in-process one (see `tollgate/token-store`). */
  tokenStore?: TokenStore | undefined
  /** Where the embedded default keeps PGlite, its token store and generated keys (DATA_DIR). Default `./.data`. */
  dataDir?: string | undefined
  /** `EdDSA` (default: others verify with the JWKS) or `HS256` (ACCESS_TOKEN_ALG). */
  accessTokenAlg?: 'EdDSA' | 'HS256' | undefined
  /** Ed25519 private key, PEM, that signs access tokens (ACCESS_TOKEN_PRIVATE_KEY). Unset: generated into `dataDir`. */
  accessTokenPrivateKey?: string | undefined
  /** More Ed25519 public keys (PEM) that verify and are published, for key rotation (ACCESS_TOKEN_PUBLIC_KEYS). */
  accessTokenPublicKeys?: string | undefined
  /** HS256 secret for access tokens, 32+ characters (ACCESS_TOKEN_SECRET); only with `accessTokenAlg: 'HS256'`. */
  accessTokenSecret?: string | undefined
  /** HS256 secret for refresh tokens, 32+ characters (REFRESH_TOKEN_SECRET). Unset: generated into `dataDir`. */
  refreshTokenSecret?: string | undefined
  /** Access token lifetime, seconds (ACCESS_TOKEN_TTL). Default 600. */
  accessTokenTtl?: number | undefined
  /** Absolute session lifetime, seconds; rotation never extends it (REFRESH_TOKEN_TTL). Default 30 days. */
  refreshTokenTtl?: number | undefined
  /** Session idle timeout, seconds (REFRESH_IDLE_TTL). Default 7 days. */
  refreshIdleTtl?: number | undefined
  /** Seconds a rotated refresh token still gets the same successor; 0 = strict (REFRESH_REUSE_INTERVAL). Default 10. */
  refreshReuseInterval?: number | undefined
  /**
   * Cookie mode for browser apps (REFRESH_COOKIE). Default false. When true, login and refresh set
   * the refresh token in an HttpOnly, Secure, SameSite=Strict cookie scoped to `<prefix>/auth/refresh`,
   * `/logout` and `/revoke` instead of the JSON body, plus a readable CSRF cookie; those routes take
   * the cookie when the body has no token, and then require an `X-CSRF-Token` header equal to the
   * CSRF cookie (403 otherwise). With `corsOrigins`, CORS allows credentials for those origins.
   */
  refreshCookie?: boolean | undefined
  /**
   * Origins allowed to call Tollgate's routes from a browser (CORS_ORIGINS). Default none. Leave it
   * unset when your app registers @fastify/cors itself: its policy then covers Tollgate's routes.
   * With refreshCookie, list https:// origins: an http:// one other than loopback gets a warning at boot.
   */
  corsOrigins?: string | string[] | undefined
  /** Requests per client IP per window to login, register and refresh, each (RATE_LIMIT_MAX). Default 30. */
  rateLimitMax?: number | undefined
  /** That window, seconds (RATE_LIMIT_WINDOW). Default 60. */
  rateLimitWindow?: number | undefined
  /** Login attempts per account per window (ACCOUNT_RATE_LIMIT_MAX). Default 10. */
  accountRateLimitMax?: number | undefined
  /** That window, seconds (ACCOUNT_RATE_LIMIT_WINDOW). Default 900. */
  accountRateLimitWindow?: number | undefined
  /** argon2 operations at once (PASSWORD_HASH_CONCURRENCY). Default 4. */
  passwordHashConcurrency?: number | undefined
  /** argon2 operations allowed to wait; beyond it 503 (PASSWORD_HASH_QUEUE). Default 64. */
  passwordHashQueue?: number | undefined
  /**
   * Tollgate's public base URL, such as `https://id.example.com` (PUBLIC_URL): the absolute URLs of
   * the RFC 8414 metadata start with it (and the prefix). Unset: the issuer when it is a URL.
   */
  publicUrl?: string | undefined
  /**
   * Clients that may call `POST <prefix>/auth/introspect` (RFC 7662) with HTTP Basic, as
   * comma-separated `id:secret` pairs, secrets of 32+ characters (INTROSPECTION_CLIENTS).
   * Unset: the endpoint does not exist.
   */
  introspectionClients?: string | undefined
  /** Introspection requests per client per `rateLimitWindow` (INTROSPECTION_RATE_LIMIT_MAX). Default 6000. */
  introspectionRateLimitMax?: number | undefined
  /**
   * The SMTP server that sends the verification and password-reset mails (SMTP_URL):
   * `smtp://[user:password@]host[:port]` (STARTTLS, required unless the host is loopback) or
   * `smtps://…` (TLS). Unset: nothing is sent. Without `databaseUrl` (the embedded default) each
   * mail is written to the log at `info` as a development outbox; with it, mail is off (each dropped
   * mail is logged as a warning, without its link).
   */
  smtpUrl?: string | undefined
  /**
   * `false` lets an `smtp://` relay without credentials on another host take mail without STARTTLS
   * (a relay on a private network you trust): links then cross it in clear text (SMTP_REQUIRE_TLS).
   * Default true.
   */
  smtpRequireTls?: boolean | undefined
  /** The From of every mail (MAIL_FROM), such as `Example <no-reply@example.com>`. Default `Tollgate <no-reply@localhost>`. */
  mailFrom?: string | undefined
  /**
   * Your front end's base URL, without a trailing slash (APP_URL): mailed links point to
   * `<appUrl>/verify-email?token=…` and `<appUrl>/reset-password?token=…`. Default `http://localhost:3000`.
   */
  appUrl?: string | undefined
  /** Refuse login (403 `EMAIL_NOT_VERIFIED`, only after a correct password) until the email is verified (REQUIRE_VERIFIED_EMAIL). Default false. */
  requireVerifiedEmail?: boolean | undefined
  /**
   * The clock of the one-time mailed tokens (email verification, password reset), in milliseconds
   * since the epoch: when they are issued and when they expire. For tests; default `Date.now`.
   * Sessions and JWTs keep the real time.
   */
  clock?: (() => number) | undefined
  /** Serve Swagger UI at `<prefix>/docs` and the OpenAPI document at `<prefix>/docs/json`. Default false. */
  docs?: boolean | undefined
  /** Serve `<prefix>/health/live` and `<prefix>/health/ready`. Default false. */
  health?: boolean | undefined
}

/** Each option that mirrors a configuration variable, and that variable. */
const VARIABLE_OF = {
  issuer: 'JWT_ISSUER',
  audience: 'JWT_AUDIENCE',
  databaseUrl: 'DATABASE_URL',
  migrateAtStart: 'MIGRATE_AT_START',
  redis: 'REDIS_URL',
  redisKeyPrefix: 'REDIS_KEY_PREFIX',
  redisClusterNodes: 'REDIS_CLUSTER_NODES',
  redisSentinels: 'REDIS_SENTINELS',
  redisSentinelName: 'REDIS_SENTINEL_NAME',
  redisUsername: 'REDIS_USERNAME',
  redisPassword: 'REDIS_PASSWORD',
  redisSentinelUsername: 'REDIS_SENTINEL_USERNAME',
  redisSentinelPassword: 'REDIS_SENTINEL_PASSWORD',
  redisTls: 'REDIS_TLS',
  redisTlsCa: 'REDIS_TLS_CA',
  redisWaitReplicas: 'REDIS_WAIT_REPLICAS',
  dataDir: 'DATA_DIR',
  accessTokenAlg: 'ACCESS_TOKEN_ALG',
  accessTokenPrivateKey: 'ACCESS_TOKEN_PRIVATE_KEY',
  accessTokenPublicKeys: 'ACCESS_TOKEN_PUBLIC_KEYS',
  accessTokenSecret: 'ACCESS_TOKEN_SECRET',
  refreshTokenSecret: 'REFRESH_TOKEN_SECRET',
  accessTokenTtl: 'ACCESS_TOKEN_TTL',
  refreshTokenTtl: 'REFRESH_TOKEN_TTL',
  refreshIdleTtl: 'REFRESH_IDLE_TTL',
  refreshReuseInterval: 'REFRESH_REUSE_INTERVAL',
  refreshCookie: 'REFRESH_COOKIE',
  corsOrigins: 'CORS_ORIGINS',
  rateLimitMax: 'RATE_LIMIT_MAX',
  rateLimitWindow: 'RATE_LIMIT_WINDOW',
  accountRateLimitMax: 'ACCOUNT_RATE_LIMIT_MAX',
  accountRateLimitWindow: 'ACCOUNT_RATE_LIMIT_WINDOW',
  passwordHashConcurrency: 'PASSWORD_HASH_CONCURRENCY',
  passwordHashQueue: 'PASSWORD_HASH_QUEUE',
  publicUrl: 'PUBLIC_URL',
  introspectionClients: 'INTROSPECTION_CLIENTS',
  introspectionRateLimitMax: 'INTROSPECTION_RATE_LIMIT_MAX',
  smtpUrl: 'SMTP_URL',
  smtpRequireTls: 'SMTP_REQUIRE_TLS',
  mailFrom: 'MAIL_FROM',
  appUrl: 'APP_URL',
  requireVerifiedEmail: 'REQUIRE_VERIFIED_EMAIL'
} as const satisfies Partial<Record<keyof TollgateOptions, keyof Config>>

// Options whose variable is true or false.
const BOOLEAN_OPTIONS = new Set<string>(['migrateAtStart', 'refreshCookie', 'redisTls', 'requireVerifiedEmail', 'smtpRequireTls'])
// Options that also take an array for their variable's comma-separated list.
const LIST_OPTIONS = new Set<string>(['corsOrigins', 'redisClusterNodes', 'redisSentinels'])

// Options that are not configuration variables, and the ones Fastify's `register` itself reads.
const OTHER_OPTIONS = new Set(['prefix', 'tokenStore', 'docs', 'health', 'clock', 'logLevel', 'logSerializers'])

/** One bad option or more; the message names each, as `loadConfig` names variables. */
export class OptionsError extends Error {
  constructor (readonly problems: string[]) {
    super(`tollgate: invalid options:\n${problems.map(p => `  ${p}`).join('\n')}`)
    this.name = 'OptionsError'
  }
}

/**
 * Validates the plugin's options with the server's own schema and rules, so both accept exactly
 * the same values, and returns them as a Config. Throws OptionsError naming each bad option.
 */
export function configFromOptions (options: TollgateOptions): Config {
  const problems: string[] = []
  const input: ConfigInput = {}
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined || OTHER_OPTIONS.has(name)) continue
    const variable = Object.hasOwn(VARIABLE_OF, name) ? VARIABLE_OF[name as keyof typeof VARIABLE_OF] : undefined
    if (!variable) {
      problems.push(`${name}: not an option of tollgate`)
    } else if (name === 'redis' && typeof value === 'object' && value !== null) {
      // A client: used as it is (see the plugin), if it is one.
      if (typeof (value as { defineCommand?: unknown }).defineCommand !== 'function') problems.push('redis: expected a redis:// URL or an ioredis client')
    } else if (BOOLEAN_OPTIONS.has(name)) {
      // A boolean, not the variable's text: 'false' would be a truthy string in the host's code.
      if (typeof value === 'boolean') input[variable] = value
      else problems.push(`${name}: expected true or false`)
    } else if (LIST_OPTIONS.has(name) && Array.isArray(value)) {
      if (value.every(item => typeof item === 'string' && item !== '' && !item.includes(','))) input[variable] = value.join(',')
      else problems.push(`${name}: expected a list of non-empty strings`)
    } else if (typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value))) {
      input[variable] = value
    } else {
      problems.push(`${name}: expected ${typeof value === 'number' ? 'an integer' : 'a string'}`)
    }
  }
  if (options.tokenStore !== undefined && typeof options.tokenStore?.isAccessAllowed !== 'function') {
    problems.push('tokenStore: expected a TokenStore (see tollgate/token-store)')
  }
  if (options.tokenStore !== undefined && options.redisWaitReplicas !== undefined && options.redisWaitReplicas !== 0) {
    problems.push('redisWaitReplicas: applies to Tollgate\'s own Redis token store, not to a `tokenStore` of yours (make its writes durable there)')
  }
  if (options.clock !== undefined && typeof options.clock !== 'function') problems.push('clock: expected a function that returns milliseconds since the epoch')
  for (const name of ['docs', 'health'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') problems.push(`${name}: expected true or false`)
  }
  let config: Config | undefined
  try {
    // Only what the options set: the environment of the host process is never read.
    config = loadConfig(input)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    // With the problems above, every bad option is named at once; but not what follows from leaving
    // out an option already refused ("required when…", "only used with…" it).
    const refused = problems.map(problem => problem.slice(0, problem.indexOf(':')))
    const namesRefused = (problem: string) => problem.split(/[^A-Za-z0-9_]+/).some(word => refused.includes(word))
    problems.push(...err.problems.map(optionNames).filter(problem => !namesRefused(problem)))
  }
  if (problems.length > 0 || config === undefined) throw new OptionsError(problems)
  return config
}

const OPTION_OF = new Map(Object.entries(VARIABLE_OF).map(([option, variable]) => [variable as string, option]))

/** A configuration problem, in the words of the options. */
function optionNames (problem: string): string {
  return problem.replace(/\b[A-Z][A-Z0-9_]+[A-Z0-9]\b/g, word => OPTION_OF.get(word) ?? word)
}

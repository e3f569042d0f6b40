import { createPrivateKey } from 'node:crypto'
import { isIP } from 'node:net'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parsePublicKeys } from './keys.js'
import { parseSmtpUrl } from './mail/smtp-url.js'

// host:port pairs; an IPv6 host in brackets.
const HOST_PORTS = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}(,(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5})*$'

const Seconds = (def: number, min: number, max: number, description: string) =>
  Type.Integer({ default: def, minimum: min, maximum: max, description: `${description} (seconds)` })

export const ConfigSchema = Type.Object({
  HOST: Type.String({ default: '127.0.0.1', minLength: 1, description: 'interface to listen on' }),
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535, description: 'TCP port' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'a postgres:// URL' })),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'a redis:// or rediss:// URL' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: HOST_PORTS, description: 'comma-separated host:port seeds of a Redis Cluster' })),
  REDIS_SENTINELS: Type.Optional(Type.String({ pattern: HOST_PORTS, description: 'comma-separated host:port of Redis Sentinels' })),
  REDIS_SENTINEL_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}$', description: 'the master group name the sentinels monitor' })),
  REDIS_USERNAME: Type.Optional(Type.String({ minLength: 1, description: 'the ACL user of the cluster nodes or of the sentinels\' master and replicas' })),
  REDIS_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'the password of the cluster nodes or of the sentinels\' master and replicas' })),
  REDIS_SENTINEL_USERNAME: Type.Optional(Type.String({ minLength: 1, description: 'the ACL user of the sentinels themselves' })),
  REDIS_SENTINEL_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'the password of the sentinels themselves' })),
  REDIS_TLS: Type.Boolean({ default: false, description: 'true or false' }),
  REDIS_TLS_CA: Type.Optional(Type.String({ minLength: 1, description: 'CA certificates in PEM that the Redis servers\' certificates chain to' })),
  REDIS_WAIT_REPLICAS: Type.Integer({ default: 0, minimum: 0, maximum: 5, description: 'replicas that must have each revocation before it is acknowledged (Redis WAIT)' }),
  REDIS_KEY_PREFIX: Type.String({ default: 'tollgate', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'letters, digits, _ . - (1-64)' }),
  MIGRATE_AT_START: Type.Boolean({ default: true, description: 'true or false' }),
  DATA_DIR: Type.String({ default: './.data', minLength: 1, description: 'a directory path' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)), { default: 'info' }),
  JWT_ISSUER: Type.String({ default: 'tollgate', minLength: 1, description: 'the exact iss of every token' }),
  JWT_AUDIENCE: Type.String({ default: 'tollgate-api', minLength: 1, description: 'the aud of access tokens' }),
  ACCESS_TOKEN_ALG: Type.Union([Type.Literal('EdDSA'), Type.Literal('HS256')], { default: 'EdDSA' }),
  ACCESS_TOKEN_PRIVATE_KEY: Type.Optional(Type.String({ minLength: 1, description: 'an Ed25519 private key in PEM' })),
  ACCESS_TOKEN_PUBLIC_KEYS: Type.Optional(Type.String({ minLength: 1, description: 'Ed25519 public keys in PEM, one after another' })),
  ACCESS_TOKEN_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'at least 32 characters' })),
  REFRESH_TOKEN_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'at least 32 characters' })),
  ACCESS_TOKEN_TTL: Seconds(600, 30, 86_400, 'access token lifetime'),
  REFRESH_TOKEN_TTL: Seconds(2_592_000, 60, 31_536_000, 'absolute session lifetime'),
  REFRESH_IDLE_TTL: Seconds(604_800, 60, 31_536_000, 'session idle timeout'),
  REFRESH_REUSE_INTERVAL: Seconds(10, 0, 300, 'grace interval for a rotated refresh token'),
  REFRESH_COOKIE: Type.Boolean({ default: false, description: 'true or false' }),
  CORS_ORIGINS: Type.String({ default: '', pattern: '^(|https?://[^,\\s/]+(,https?://[^,\\s/]+)*)$', description: 'comma-separated origins such as https://app.example.com' }),
  TRUST_PROXY: Type.String({ default: '', description: 'empty, a hop count, or comma-separated proxy addresses/CIDRs' }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*[^\\s?#/])?$', description: 'the public base URL, such as https://id.example.com, without a trailing slash' })),
  INTROSPECTION_CLIENTS: Type.Optional(Type.String({ minLength: 1, description: 'comma-separated id:secret pairs (ids of letters, digits, . _ ~ -; secrets of 32 or more characters)' })),
  INTROSPECTION_RATE_LIMIT_MAX: Type.Integer({ default: 6000, minimum: 1, maximum: 1_000_000, description: 'introspection requests per client, and per client IP before authentication, per RATE_LIMIT_WINDOW' }),
  // Mail: email verification and password reset. Unset SMTP_URL: mails go to the log in the embedded
  // default only (the development outbox); with DATABASE_URL, mail is off (see plugins/tollgate.ts).
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://[^\\s?#]+$', description: 'smtp://[user:password@]host[:port] or smtps://…, without a query' })),
  SMTP_REQUIRE_TLS: Type.Boolean({ default: true, description: 'true or false' }),
  MAIL_FROM: Type.String({ default: 'Tollgate <no-reply@localhost>', minLength: 3, maxLength: 320, description: 'the From of every mail, such as Example <no-reply@example.com>' }),
  APP_URL: Type.String({ default: 'http://localhost:3000', pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*[^\\s?#/])?$', description: 'the front end\'s base URL that mailed links point to, without a trailing slash' }),
  REQUIRE_VERIFIED_EMAIL: Type.Boolean({ default: false, description: 'true or false' }),
  RATE_LIMIT_MAX: Type.Integer({ default: 30, minimum: 1, maximum: 1_000_000, description: 'requests per client IP per window to each of login, register, refresh, revoke, email verification, password forgot and reset' }),
  RATE_LIMIT_WINDOW: Seconds(60, 1, 86_400, 'rate-limit window'),
  ACCOUNT_RATE_LIMIT_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 1_000_000, description: 'login attempts per account per window' }),
  ACCOUNT_RATE_LIMIT_WINDOW: Seconds(900, 1, 86_400, 'per-account login window'),
  PASSWORD_HASH_CONCURRENCY: Type.Integer({ default: 4, minimum: 1, maximum: 64, description: 'argon2 operations at once' }),
  PASSWORD_HASH_QUEUE: Type.Integer({ default: 64, minimum: 0, maximum: 10_000, description: 'argon2 operations waiting; beyond it requests get 503' })
})

export type Config = Static<typeof ConfigSchema>
export type ConfigInput = Partial<Record<keyof Config, string | number | boolean | undefined>>

export class ConfigError extends Error {
  constructor (readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map(p => `  ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

function describe (schema: TSchema): string {
  if (schema.anyOf) return `one of ${schema.anyOf.map((s: TSchema) => s.const).join(', ')}`
  if (schema.type === 'integer') return `an integer from ${schema.minimum} to ${schema.maximum}`
  return schema.description ?? 'a string'
}

/**
 * Validates the environment (or a test's values) against ConfigSchema and the rules that tie
 * variables together. Throws one ConfigError that names every bad variable.
 */
export function loadConfig (input: ConfigInput | NodeJS.ProcessEnv): Config {
  const picked: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = input[key as keyof typeof input]
    // An empty variable means "not set", as in most shells' `FOO= cmd`.
    if (value !== undefined && value !== '') picked[key] = value
  }
  const problems: string[] = []
  // Value.Convert would read "3e3" as 3 and "true" as 1: an integer variable must be digits only.
  for (const [key, value] of Object.entries(picked)) {
    const property = ConfigSchema.properties[key as keyof Config] as TSchema
    if (property.type === 'integer' && typeof value === 'string' && !/^\d{1,15}$/.test(value)) {
      problems.push(`${key}: expected ${describe(property)}`)
      delete picked[key]
    }
    // …and would read "1", "yes" or "on" as true: a boolean variable is true or false, nothing else.
    if (property.type === 'boolean' && typeof value === 'string' && value !== 'true' && value !== 'false') {
      problems.push(`${key}: expected ${describe(property)}`)
      delete picked[key]
    }
  }
  const candidate = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, picked))
  for (const error of Value.Errors(ConfigSchema, candidate)) {
    const key = error.path.slice(1)
    if (!key || problems.some(p => p.startsWith(`${key}:`))) continue
    const property = ConfigSchema.properties[key as keyof Config] as TSchema | undefined
    problems.push(`${key}: expected ${property ? describe(property) : 'a valid value'}`)
  }
  const config = candidate as Config
  for (const problem of crossCheck(config)) {
    if (!problems.some(p => p.split(':')[0] === problem.split(':')[0])) problems.push(problem)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

// The DATABASE_URL parameters Tollgate honours (libpq's names and sslmode values); MikroORM would
// drop any other silently, so they are refused.
const DATABASE_URL_PARAMETERS = new Set(['sslmode', 'sslrootcert'])
export const POSTGRES_SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const

// A URL that does not parse, named but never repeated (it may hold a password).
const NOT_A_URL = 'not a valid URL (percent-encode reserved characters such as # / ? @ : in the user name and password)'

/** What is wrong with DATABASE_URL, if anything; never its value (it holds a password). */
function databaseUrlProblem (value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return `DATABASE_URL: ${NOT_A_URL}`
  }
  const unknown = [...url.searchParams.keys()].filter(name => !DATABASE_URL_PARAMETERS.has(name))
  if (unknown.length > 0) return `DATABASE_URL: parameters other than sslmode and sslrootcert are not supported (${unknown.length} found)`
  const mode = url.searchParams.get('sslmode')
  if (mode !== null && !(POSTGRES_SSL_MODES as readonly string[]).includes(mode)) return `DATABASE_URL: sslmode must be one of ${POSTGRES_SSL_MODES.join(', ')}`
  return undefined
}

// What proxy-addr (Fastify's trustProxy) takes: an address, a CIDR, or one of its named ranges.
const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal'])
function isTrustProxy (value: string): boolean {
  if (value === '' || value === 'true' || /^\d+$/.test(value)) return true
  return value.split(',').map(part => part.trim()).every(part => {
    if (PROXY_RANGES.has(part)) return true
    const [address = '', bits, ...rest] = part.split('/')
    const version = isIP(address)
    if (version === 0 || rest.length > 0) return false
    return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (version === 4 ? 32 : 128))
  })
}

function crossCheck (config: Config): string[] {
  const problems: string[] = []
  if (!isTrustProxy(config.TRUST_PROXY)) {
    problems.push('TRUST_PROXY: expected empty, true, a hop count, or comma-separated addresses, CIDRs or loopback, linklocal, uniquelocal')
  }
  const databaseUrl = config.DATABASE_URL === undefined ? undefined : databaseUrlProblem(config.DATABASE_URL)
  if (databaseUrl) problems.push(databaseUrl)
  if (config.REDIS_URL !== undefined && !URL.canParse(config.REDIS_URL)) {
    problems.push(`REDIS_URL: ${NOT_A_URL}`)
  }
  if (config.ACCESS_TOKEN_ALG === 'HS256' && !config.ACCESS_TOKEN_SECRET) {
    problems.push('ACCESS_TOKEN_SECRET: required when ACCESS_TOKEN_ALG is HS256')
  }
  if (config.ACCESS_TOKEN_ALG === 'EdDSA' && config.ACCESS_TOKEN_SECRET) {
    problems.push('ACCESS_TOKEN_SECRET: only used with ACCESS_TOKEN_ALG=HS256; set ACCESS_TOKEN_PRIVATE_KEY for EdDSA')
  }
  if (config.ACCESS_TOKEN_PRIVATE_KEY && !isEd25519PrivateKey(config.ACCESS_TOKEN_PRIVATE_KEY)) {
    problems.push('ACCESS_TOKEN_PRIVATE_KEY: expected an Ed25519 private key in PEM')
  }
  if (config.ACCESS_TOKEN_PUBLIC_KEYS) {
    if (config.ACCESS_TOKEN_ALG !== 'EdDSA') {
      problems.push('ACCESS_TOKEN_PUBLIC_KEYS: only used with ACCESS_TOKEN_ALG=EdDSA')
    } else if (parsePublicKeys(config.ACCESS_TOKEN_PUBLIC_KEYS) === null) {
      problems.push('ACCESS_TOKEN_PUBLIC_KEYS: expected Ed25519 public keys in PEM (-----BEGIN PUBLIC KEY-----), one after another')
    }
  }
  if (config.ACCESS_TOKEN_SECRET && config.ACCESS_TOKEN_SECRET === config.REFRESH_TOKEN_SECRET) {
    problems.push('REFRESH_TOKEN_SECRET: must differ from ACCESS_TOKEN_SECRET (each token type has its own key)')
  }
  if (config.INTROSPECTION_CLIENTS !== undefined && parseIntrospectionClients(config.INTROSPECTION_CLIENTS) === null) {
    problems.push('INTROSPECTION_CLIENTS: expected comma-separated id:secret pairs, each id unique (letters, digits, . _ ~ -) and each secret 32 or more characters')
  }
  problems.push(...redisProblems(config))
  if (config.REFRESH_IDLE_TTL > config.REFRESH_TOKEN_TTL) {
    problems.push('REFRESH_IDLE_TTL: must not exceed REFRESH_TOKEN_TTL')
  }
  problems.push(...mailProblems(config))
  return problems
}

/** The mail settings; a message never repeats SMTP_URL, which holds a password. */
function mailProblems (config: Config): string[] {
  const problems: string[] = []
  const smtp = config.SMTP_URL === undefined ? undefined : parseSmtpUrl(config.SMTP_URL)
  if (smtp === null) {
    problems.push('SMTP_URL: expected smtp://[user:password@]host[:port] or smtps://… (user and password both, percent-encoded), without a path or query')
  }
  // Credentials never cross a network in clear text, whatever the opt-out says.
  if (!config.SMTP_REQUIRE_TLS && smtp?.auth) {
    problems.push('SMTP_REQUIRE_TLS: false is only for a relay without credentials; with a user and password in SMTP_URL, TLS stays required')
  }
  // Without mail (real servers and no SMTP_URL) no address could ever be verified: nobody new could log in.
  if (config.REQUIRE_VERIFIED_EMAIL && config.SMTP_URL === undefined && config.DATABASE_URL !== undefined) {
    problems.push('REQUIRE_VERIFIED_EMAIL: needs SMTP_URL when DATABASE_URL is set (without mail no address can be verified)')
  }
  // The value becomes a mail header: no line breaks or other control characters in the name.
  if (!/^[^<>\s@]+@[^<>\s@]+$|^[^<>\p{Cc}]*<[^<>\s@]+@[^<>\s@]+>$/u.test(config.MAIL_FROM)) {
    problems.push('MAIL_FROM: expected an address, or a name and an address in angle brackets: Example <no-reply@example.com>')
  }
  return problems
}

/** One way to reach Redis at most, and each Redis setting only where it applies. */
function redisProblems (config: Config): string[] {
  const problems: string[] = []
  const modes = (['REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS'] as const).filter(key => config[key] !== undefined)
  if (modes.length > 1) problems.push(`${modes[1]}: set one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS, not ${modes.join(' and ')}`)
  if (config.REDIS_SENTINELS !== undefined && config.REDIS_SENTINEL_NAME === undefined) {
    problems.push('REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the name of the master group the sentinels monitor)')
  }
  for (const key of ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_USERNAME', 'REDIS_SENTINEL_PASSWORD'] as const) {
    if (config[key] !== undefined && config.REDIS_SENTINELS === undefined) problems.push(`${key}: only used with REDIS_SENTINELS`)
  }
  const clientSettings = ['REDIS_USERNAME', 'REDIS_PASSWORD', 'REDIS_TLS_CA', ...(config.REDIS_TLS ? ['REDIS_TLS' as const] : [])] as const
  for (const key of clientSettings) {
    if (config[key] === undefined || config.REDIS_CLUSTER_NODES !== undefined || config.REDIS_SENTINELS !== undefined) continue
    problems.push(config.REDIS_URL !== undefined
      ? `${key}: not used with REDIS_URL; put credentials in the URL (redis://user:password@host) and use rediss:// for TLS`
      : `${key}: only used with REDIS_CLUSTER_NODES or REDIS_SENTINELS`)
  }
  if (config.REDIS_USERNAME !== undefined && config.REDIS_PASSWORD === undefined) problems.push('REDIS_USERNAME: needs REDIS_PASSWORD')
  if (config.REDIS_SENTINEL_USERNAME !== undefined && config.REDIS_SENTINEL_PASSWORD === undefined) problems.push('REDIS_SENTINEL_USERNAME: needs REDIS_SENTINEL_PASSWORD')
  if (config.REDIS_TLS_CA !== undefined && !config.REDIS_TLS && !problems.some(p => p.startsWith('REDIS_TLS_CA:'))) problems.push('REDIS_TLS_CA: only used with REDIS_TLS=true')
  if (config.REDIS_WAIT_REPLICAS > 0 && config.REDIS_CLUSTER_NODES !== undefined) {
    problems.push('REDIS_WAIT_REPLICAS: not supported with REDIS_CLUSTER_NODES (WAIT would have to reach the master of each user\'s slot); use it with REDIS_URL or REDIS_SENTINELS')
  }
  if (config.REDIS_TLS_CA !== undefined && !config.REDIS_TLS_CA.includes('-----BEGIN CERTIFICATE-----')) problems.push('REDIS_TLS_CA: expected certificates in PEM (-----BEGIN CERTIFICATE-----)')
  return problems
}

const CLIENT_ID = /^[A-Za-z0-9._~-]{1,64}$/

/** The clients that may introspect (RFC 7662 §2.1), id → secret; null if the value is malformed. */
export function parseIntrospectionClients (value: string): Map<string, string> | null {
  const clients = new Map<string, string>()
  for (const pair of value.split(',')) {
    const colon = pair.indexOf(':')
    const id = pair.slice(0, colon)
    const secret = pair.slice(colon + 1)
    if (colon < 0 || !CLIENT_ID.test(id) || secret.length < 32 || clients.has(id)) return null
    clients.set(id, secret)
  }
  return clients
}

function isEd25519PrivateKey (pem: string): boolean {
  try {
    return createPrivateKey(pem).asymmetricKeyType === 'ed25519'
  } catch {
    return false
  }
}

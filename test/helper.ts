import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { Redis } from 'ioredis'
import pg from 'pg'
import type { DestinationStream } from 'pino'
import type { TollgateOptions } from '../plugins/tollgate.js'
import { loadConfig, type Config, type ConfigInput } from '../src/config.js'
import { REDIS_CLIENT_OPTIONS } from '../src/redis-client.js'
import { buildServer, type BuildServerOptions } from '../src/server.js'

// The services of this machine kind (and of CI). Tests fail, never skip, when they are missing.
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432'
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** The subset of tap's Test that the helpers need. */
export interface TestContext {
  teardown (fn: () => unknown): void
}

/** A fresh PostgreSQL database for one test, dropped at teardown. Returns its URL. */
export async function createTestDatabase (t: TestContext): Promise<string> {
  const name = `tollgate_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
  await admin.connect()
  try {
    await admin.query(`create database "${name}"`)
  } finally {
    await admin.end()
  }
  t.teardown(async () => {
    const client = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
    await client.connect()
    await client.query(`drop database if exists "${name}" with (force)`)
    await client.end()
  })
  return `${POSTGRES_URL}/${name}`
}

export interface TestKeys {
  accessPrivateKey: string
  refreshSecret: string
}

export function testKeys (): TestKeys {
  return {
    accessPrivateKey: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    refreshSecret: randomBytes(32).toString('base64url')
  }
}

/** A validated config on this machine's services, with its own Redis key prefix and keys. */
export function testConfig (input: ConfigInput & { keys?: TestKeys } = {}): Config {
  const { keys = testKeys(), ...overrides } = input
  return loadConfig({
    REDIS_URL,
    REDIS_KEY_PREFIX: `t-${randomBytes(6).toString('hex')}`,
    LOG_LEVEL: 'silent',
    ACCESS_TOKEN_PRIVATE_KEY: keys.accessPrivateKey,
    REFRESH_TOKEN_SECRET: keys.refreshSecret,
    DATA_DIR: join(tmpdir(), 'tollgate-test-unused'),
    // Tests log in many times from one address; the rate-limit tests set their own limits.
    RATE_LIMIT_MAX: 100_000,
    ACCOUNT_RATE_LIMIT_MAX: 100_000,
    ...overrides
  })
}

export interface BuildOptions {
  /** Config values over the test defaults; DATABASE_URL defaults to a fresh database. */
  config?: ConfigInput
  keys?: TestKeys
  /** Fastify options over the server's own. */
  server?: FastifyServerOptions
  /** Where the server's own logger (level from LOG_LEVEL, redaction on) writes. */
  logStream?: DestinationStream
  /** Plugin options beyond the configuration, such as an injected `clock`. */
  tollgate?: BuildServerOptions['tollgate']
}

export type TestApp = FastifyInstance & { testKeys: TestKeys }

/** The app exactly as the server builds it, on a fresh database and Redis prefix; closed at teardown. */
export async function build (t: TestContext, options: BuildOptions = {}): Promise<TestApp> {
  const keys = options.keys ?? testKeys()
  const databaseUrl = options.config && 'DATABASE_URL' in options.config
    ? options.config.DATABASE_URL
    : await createTestDatabase(t)
  const config = testConfig({ DATABASE_URL: databaseUrl, ...options.config, keys })
  const app = await buildServer(config, { server: options.server, logStream: options.logStream, tollgate: options.tollgate })
  t.teardown(async () => {
    await app.close()
    if (config.REDIS_URL === REDIS_URL) await deleteRedisPrefix(config.REDIS_KEY_PREFIX)
  })
  app.decorate('testKeys', keys)
  await app.ready()
  return app as unknown as TestApp
}

/**
 * The options a host app passes to the tollgate plugin: test keys, a fresh database, and this
 * machine's Redis under a fresh key prefix (deleted at teardown); `overrides` over them.
 */
export async function pluginOptions (t: TestContext, overrides: TollgateOptions = {}): Promise<TollgateOptions> {
  const keys = testKeys()
  const redisKeyPrefix = `t-${randomBytes(6).toString('hex')}`
  t.teardown(() => deleteRedisPrefix(redisKeyPrefix))
  return {
    accessTokenPrivateKey: keys.accessPrivateKey,
    refreshTokenSecret: keys.refreshSecret,
    databaseUrl: await createTestDatabase(t),
    redis: REDIS_URL,
    redisKeyPrefix,
    ...overrides
  }
}

export async function deleteRedisPrefix (prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true })
  await redis.connect()
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500)
      if (keys.length) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

/**
 * A client made as Tollgate makes its own (fail-fast options, connected) and a fresh key prefix,
 * for a Redis token store of the test's own: the client is closed and the prefix deleted at teardown.
 * `url`: another redis-server, one the test started (its keys go with it).
 */
export async function storeRedis (t: TestContext, url = REDIS_URL): Promise<{ redis: Redis, prefix: string }> {
  const redis = new Redis(url, REDIS_CLIENT_OPTIONS)
  await redis.connect()
  const prefix = `t-${randomBytes(6).toString('hex')}`
  t.teardown(async () => {
    redis.disconnect()
    await deleteRedisPrefix(prefix)
  })
  return { redis, prefix }
}

/** A Redis client for reading the store's keys in assertions; closed at teardown. */
export async function redisClient (t: TestContext, url = REDIS_URL): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true })
  await redis.connect()
  t.teardown(() => redis.disconnect())
  return redis
}

export function bearer (token: string) {
  return { authorization: `Bearer ${token}` }
}

export interface TokenPair {
  access_token: string
  refresh_token: string
  token_type: string
  expires_in: number
  refresh_expires_in: number
}

export interface LoggedIn {
  userId: string
  email: string
  password: string
  tokens: TokenPair
}

/** Registers a new user (unique email) and logs in. */
export async function registerAndLogin (app: FastifyInstance, input: { email?: string, password?: string, userAgent?: string } = {}): Promise<LoggedIn> {
  const email = input.email ?? `user-${randomUUID()}@example.com`
  const password = input.password ?? 'correct horse battery staple'
  const registered = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password } })
  if (registered.statusCode !== 201) throw new Error(`register failed: ${registered.statusCode} ${registered.body}`)
  return { userId: registered.json().id, email, password, tokens: await login(app, email, password, input.userAgent) }
}

export async function login (app: FastifyInstance, email: string, password: string, userAgent?: string): Promise<TokenPair> {
  const res = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email, password },
    headers: userAgent ? { 'user-agent': userAgent } : {}
  })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  return res.json()
}

export async function refresh (app: FastifyInstance, refreshToken: string) {
  return app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: refreshToken } })
}

/** Decodes a JWT's payload without verifying it (assertions only). */
export function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString())
}

/** A temporary directory removed at teardown. */
export async function tempDir (t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

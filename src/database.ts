import { readFileSync } from 'node:fs'
import type { ConnectionOptions } from 'node:tls'
import { mkdir } from 'node:fs/promises'
import { PGlite } from '@electric-sql/pglite'
import { MikroORM, defineConfig as defineCoreConfig } from '@mikro-orm/core'
import { Migrator } from '@mikro-orm/migrations'
import { defineConfig, type MikroORM as PostgreSqlORM } from '@mikro-orm/postgresql'
import { PGliteDriver } from 'mikro-orm-pglite'
import { UserEntity } from './entities/user.js'
import { migrationsList } from './migrations/index.js'

const COMMON = {
  entities: [UserEntity],
  extensions: [Migrator],
  migrations: { migrationsList, transactional: true, snapshot: false, silent: true },
  // Every query runs in a forked EntityManager (see user-repository.ts), never the global one.
  allowGlobalContext: false,
  debug: false
}

export type DatabaseOptions =
  /** A PostgreSQL server at a postgres:// URL. */
  | { url: string }
  /** The embedded default: PostgreSQL compiled to WASM, in this process, its files under `pgliteDir`. */
  | { pgliteDir: string }

export interface MigrateOptions {
  /** How long to wait for another instance's migrations (the PostgreSQL lock), ms. Default 60 s. */
  lockTimeoutMs?: number
}

export interface Database {
  orm: MikroORM
  /**
   * Applies pending migrations; returns their names. On PostgreSQL, one instance at a time (an
   * advisory lock); one that waited finds nothing left to do. Throws MigrationError.
   */
  migrate (options?: MigrateOptions): Promise<string[]>
  /** The migrations this version needs that the database has not recorded yet (none: the schema is current). */
  pendingMigrations (): Promise<string[]>
  close (): Promise<void>
}

/** Migrations failed, or another instance held the migration lock too long. */
export class MigrationError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MigrationError'
  }
}

/**
 * The key of the advisory lock that serialises migrations across instances (an arbitrary fixed
 * bigint; advisory locks are per database, so databases on one server never wait for each other).
 */
export const MIGRATION_LOCK_KEY = '7307527648391745841'
const LOCK_TIMEOUT_MS = 60_000
const LOCK_POLL_MS = 100

/** The raw node-postgres client behind one of knex's pooled connections (only what is used here). */
interface PooledConnection {
  query (sql: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>
  end (): Promise<void>
}

/**
 * Runs `fn` while holding the migration lock. A session-level advisory lock belongs to the
 * connection that took it and must be released on that same connection, so one connection is taken
 * out of the ORM's own pool (knex's acquireConnection) and kept out until the unlock: no second
 * client library or URL parsing, and if the process dies, PostgreSQL drops the lock with the
 * connection. The migrator runs on other pooled connections meanwhile (the pool has 10).
 * pg_try_advisory_lock is polled rather than pg_advisory_lock awaited, because the pool's
 * statement_timeout (5 s) would cut a blocking wait short and the wait must be bounded anyway.
 */
async function withMigrationLock<T> (orm: PostgreSqlORM, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const client = orm.em.getConnection().getKnex().client
  const connection = await client.acquireConnection() as PooledConnection
  try {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const { rows } = await connection.query('select pg_try_advisory_lock($1::bigint) as locked', [MIGRATION_LOCK_KEY])
      if (rows[0]?.locked === true) break
      if (Date.now() >= deadline) {
        throw new MigrationError(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for the migration lock ` +
          `(pg_advisory_lock ${MIGRATION_LOCK_KEY}): another instance is still migrating, or holds the lock`)
      }
      await new Promise(resolve => setTimeout(resolve, LOCK_POLL_MS))
    }
    try {
      return await fn()
    } finally {
      // Should the unlock fail, closing the connection is what releases the lock.
      await connection.query('select pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]).catch(() => connection.end())
    }
  } finally {
    await client.releaseConnection(connection)
  }
}

async function runMigrations (orm: MikroORM): Promise<string[]> {
  try {
    return (await orm.getMigrator().up()).map(m => m.name)
  } catch (err) {
    throw new MigrationError(`database migrations failed: ${reasonOf(err)}`, { cause: err })
  }
}

/**
 * Read straight from the migrator's table: the migrator's own listing would first create that
 * table, and a readiness probe must not write.
 */
async function pendingMigrations (orm: MikroORM): Promise<string[]> {
  const table = orm.config.get('migrations').tableName ?? 'mikro_orm_migrations'
  let rows: Array<{ name: string }>
  try {
    rows = await orm.em.getConnection().execute(`select name from "${table}"`)
  } catch (err) {
    // 42P01: no such table, so nothing was ever migrated.
    if ((err as { code?: unknown }).code === '42P01') rows = []
    else throw err
  }
  const applied = new Set(rows.map(row => row.name.replace(/\.[jt]s$/, '')))
  return migrationsList.map(m => m.name).filter(name => !applied.has(name))
}

/**
 * One line for the log: MikroORM's messages carry the whole SQL statement, so this keeps the failed
 * migration and the database's own words (`relation "users" already exists (42P07)`). The whole
 * error stays the MigrationError's cause.
 */
function reasonOf (err: unknown): string {
  const chain: Error[] = []
  for (let e = err; e instanceof Error && chain.length < 10; e = e.cause) chain.push(e)
  if (chain.length === 0) return String(err)
  const step = /^Migration \S+ \((?:up|down)\) failed/.exec(chain[0]!.message)?.[0]
  const driver = chain.findLast(e => typeof (e as { code?: unknown }).code === 'string') as (Error & { code: string }) | undefined
  const reason = driver ? `${driver.message.split(' - ').at(-1)} (${driver.code})` : chain.at(-1)!.message
  return [step, reason].filter(Boolean).join(': ').replace(/\s+/g, ' ')
}

/**
 * node-postgres's TLS settings for DATABASE_URL's `sslmode` and `sslrootcert`, with libpq's meaning:
 * MikroORM keeps only the URL's host, port, user, password and database. `require` encrypts without
 * checking the server's certificate; `verify-ca` checks it against `sslrootcert` (or the system's
 * CAs); `verify-full` checks the host name too.
 */
export function postgresTls (url: string): ConnectionOptions | undefined {
  const params = new URL(url).searchParams
  const mode = params.get('sslmode') ?? 'disable'
  if (mode === 'disable') return undefined
  if (mode === 'require') return { rejectUnauthorized: false }
  const rootCert = params.get('sslrootcert')
  const ca = rootCert ? readFileSync(rootCert, 'utf8') : undefined
  return mode === 'verify-ca' ? { ca, checkServerIdentity: () => undefined } : { ca }
}

/** Opens the users' database: the one place that knows how, for the plugin and `npm run migrate`. */
export async function openDatabase (options: DatabaseOptions): Promise<Database> {
  let orm: MikroORM
  let pglite: PGlite | undefined
  let postgres: PostgreSqlORM | undefined
  if ('url' in options) {
    orm = postgres = await MikroORM.init(defineConfig({
      ...COMMON,
      clientUrl: options.url,
      // A database that does not exist is an error, never created empty: a typo in DATABASE_URL
      // must not start a service on an empty users table.
      ensureDatabase: false,
      // Fail fast when PostgreSQL is down so requests answer 503 instead of waiting.
      pool: { min: 0, max: 10, acquireTimeoutMillis: 2000 },
      driverOptions: { connection: { connectionTimeoutMillis: 1500, statement_timeout: 5000, ssl: postgresTls(options.url) } }
    }))
  } else {
    // PGlite creates its own directory but not its parents.
    await mkdir(options.pgliteDir, { recursive: true, mode: 0o700 })
    const embedded = new PGlite(options.pgliteDir)
    pglite = embedded
    orm = await MikroORM.init(defineCoreConfig({
      ...COMMON,
      driver: PGliteDriver,
      dbName: 'postgres',
      driverOptions: { connection: { pglite: () => embedded } }
    }))
  }
  return {
    orm,
    // PGlite lives in this one process, which cannot run two migrations at once: no lock.
    migrate: async ({ lockTimeoutMs = LOCK_TIMEOUT_MS } = {}) => postgres
      ? await withMigrationLock(postgres, lockTimeoutMs, () => runMigrations(orm))
      : await runMigrations(orm),
    pendingMigrations: async () => await pendingMigrations(orm),
    async close () {
      await orm.close()
      await pglite?.close()
    }
  }
}

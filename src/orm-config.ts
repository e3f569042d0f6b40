import type { PGlite } from '@electric-sql/pglite'
import { defineConfig as defineCoreConfig } from '@mikro-orm/core'
import { Migrator } from '@mikro-orm/migrations'
import { defineConfig } from '@mikro-orm/postgresql'
import { PGliteDriver } from 'mikro-orm-pglite'
import { UserEntity } from './entities/user.js'
import { migrationsList } from './migrations/index.js'

const COMMON = {
  entities: [UserEntity],
  extensions: [Migrator],
  migrations: { migrationsList, transactional: true, snapshot: false, silent: true },
  // Every query runs in a forked EntityManager: RequestContext per request, fork() elsewhere.
  allowGlobalContext: false,
  debug: false
}

/** PostgreSQL server at `clientUrl`. */
export function createOrmConfig (clientUrl: string) {
  return defineConfig({
    ...COMMON,
    clientUrl,
    // Fail fast when PostgreSQL is down so requests answer 503 instead of waiting.
    pool: { min: 0, max: 10, acquireTimeoutMillis: 2000 },
    driverOptions: { connection: { connectionTimeoutMillis: 1500, statement_timeout: 5000 } }
  })
}

/** The embedded default: PostgreSQL compiled to WASM, in this process, on the given PGlite. */
export function createPgliteOrmConfig (pglite: PGlite) {
  return defineCoreConfig({
    ...COMMON,
    driver: PGliteDriver,
    dbName: 'postgres',
    driverOptions: { connection: { pglite: () => pglite } }
  })
}

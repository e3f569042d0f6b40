import { mkdir } from 'node:fs/promises'
import { PGlite } from '@electric-sql/pglite'
import { MikroORM, defineConfig as defineCoreConfig } from '@mikro-orm/core'
import { Migrator } from '@mikro-orm/migrations'
import { defineConfig } from '@mikro-orm/postgresql'
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

export interface Database {
  orm: MikroORM
  /** Applies pending migrations; returns their names. */
  migrate (): Promise<string[]>
  close (): Promise<void>
}

/** Opens the users' database: the one place that knows how, for the plugin and `npm run migrate`. */
export async function openDatabase (options: DatabaseOptions): Promise<Database> {
  let orm: MikroORM
  let pglite: PGlite | undefined
  if ('url' in options) {
    orm = await MikroORM.init(defineConfig({
      ...COMMON,
      clientUrl: options.url,
      // Fail fast when PostgreSQL is down so requests answer 503 instead of waiting.
      pool: { min: 0, max: 10, acquireTimeoutMillis: 2000 },
      driverOptions: { connection: { connectionTimeoutMillis: 1500, statement_timeout: 5000 } }
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
    migrate: async () => (await orm.getMigrator().up()).map(m => m.name),
    async close () {
      await orm.close()
      await pglite?.close()
    }
  }
}

import { Migrator } from '@mikro-orm/migrations'
import { defineConfig } from '@mikro-orm/postgresql'
import { UserEntity } from './entities/user.js'
import { migrationsList } from './migrations/index.js'

export function createOrmConfig (clientUrl: string) {
  return defineConfig({
    clientUrl,
    entities: [UserEntity],
    extensions: [Migrator],
    migrations: { migrationsList, transactional: true, snapshot: false, silent: true },
    // Every query runs in a forked EntityManager: RequestContext per request, fork() elsewhere.
    allowGlobalContext: false,
    // Fail fast when PostgreSQL is down so requests answer 503 instead of waiting.
    pool: { min: 0, max: 10, acquireTimeoutMillis: 2000 },
    driverOptions: { connection: { connectionTimeoutMillis: 1500, statement_timeout: 5000 } },
    debug: false
  })
}

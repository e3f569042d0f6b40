import { join } from 'node:path'
import { ConfigError, loadConfig } from './config.js'
import { MigrationError, openDatabase } from './database.js'
import { logSafeError } from './log-safe-error.js'

// `npm run migrate`: apply pending migrations to DATABASE_URL, or to the embedded database under
// DATA_DIR when it is unset (the server also does this at start unless MIGRATE_AT_START=false).
// On PostgreSQL it takes the same advisory lock as the servers' start, so it may run beside them.
try {
  const config = loadConfig(process.env)
  const database = await openDatabase(config.DATABASE_URL ? { url: config.DATABASE_URL } : { pgliteDir: join(config.DATA_DIR, 'pglite') })
  const applied = await database.migrate()
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'no pending migrations')
  await database.close()
} catch (err) {
  // The message only: an error object can carry DATABASE_URL, password included.
  console.error(err instanceof ConfigError || err instanceof MigrationError ? err.message : logSafeError(err))
  process.exit(1)
}

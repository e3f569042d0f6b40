import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { MikroORM } from '@mikro-orm/core'
import { ConfigError, loadConfig } from './config.js'
import { createOrmConfig, createPgliteOrmConfig } from './orm-config.js'

// `npm run migrate`: apply pending migrations to DATABASE_URL, or to the embedded database under
// DATA_DIR when it is unset (the server also does this at start).
try {
  const config = loadConfig(process.env)
  let pglite: PGlite | undefined
  let orm: MikroORM
  if (config.DATABASE_URL) {
    orm = await MikroORM.init(createOrmConfig(config.DATABASE_URL))
  } else {
    const dir = join(config.DATA_DIR, 'pglite')
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    pglite = new PGlite(dir)
    orm = await MikroORM.init(createPgliteOrmConfig(pglite))
  }
  const applied = await orm.getMigrator().up()
  console.log(applied.length ? `applied: ${applied.map(m => m.name).join(', ')}` : 'no pending migrations')
  await orm.close()
  await pglite?.close()
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
}

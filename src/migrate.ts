import { MikroORM } from '@mikro-orm/postgresql'
import { ConfigError, loadConfig } from './config.js'
import { createOrmConfig } from './orm-config.js'

// `npm run migrate`: apply pending migrations to DATABASE_URL (the server also does this at start).
try {
  const config = loadConfig(process.env)
  if (!config.DATABASE_URL) throw new ConfigError(['DATABASE_URL: required to run migrations'])
  const orm = await MikroORM.init(createOrmConfig(config.DATABASE_URL))
  const applied = await orm.getMigrator().up()
  console.log(applied.length ? `applied: ${applied.map(m => m.name).join(', ')}` : 'no pending migrations')
  await orm.close()
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
}

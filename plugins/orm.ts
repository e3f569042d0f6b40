import { mkdir } from 'node:fs/promises'
import { PGlite } from '@electric-sql/pglite'
import { MikroORM } from '@mikro-orm/core'
import fp from 'fastify-plugin'
import { createOrmConfig, createPgliteOrmConfig } from '../src/orm-config.js'
import { createUserRepository, type UserRepository } from '../src/user-repository.js'

declare module 'fastify' {
  interface FastifyInstance {
    orm: MikroORM
    users: UserRepository
    databaseKind: 'postgresql' | 'pglite'
  }
}

export type OrmPluginOptions =
  /** A postgres:// URL: the plugin creates the ORM, migrates, and closes it. */
  | { url: string }
  /** The embedded default: PGlite with its files under `dataDir`; created, migrated and closed here. */
  | { pgliteDir: string }
  /** An ORM the host app owns (already migrated); never closed here. */
  | { orm: MikroORM }

export default fp(async function ormPlugin (fastify, opts: OrmPluginOptions) {
  let orm: MikroORM
  let kind: 'postgresql' | 'pglite' = 'postgresql'
  if ('orm' in opts) {
    orm = opts.orm
  } else {
    let pglite: PGlite | undefined
    if ('url' in opts) {
      orm = await MikroORM.init(createOrmConfig(opts.url))
    } else {
      kind = 'pglite'
      // PGlite creates its own directory but not its parents.
      await mkdir(opts.pgliteDir, { recursive: true, mode: 0o700 })
      pglite = new PGlite(opts.pgliteDir)
      orm = await MikroORM.init(createPgliteOrmConfig(pglite))
    }
    fastify.addHook('onClose', async function closeOrm () {
      await orm.close()
      await pglite?.close()
    })
    await orm.getMigrator().up()
  }
  fastify.decorate('orm', orm)
  fastify.decorate('users', createUserRepository(orm))
  fastify.decorate('databaseKind', kind)
  // No RequestContext per request (MikroORM's guide): the repository forks per call, so routes that
  // never touch PostgreSQL, such as every route of an app embedding the auth plugin, pay nothing.
}, { name: 'orm', dependencies: ['config'] })

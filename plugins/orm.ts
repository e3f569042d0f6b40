import { MikroORM, RequestContext } from '@mikro-orm/postgresql'
import fp from 'fastify-plugin'
import { createOrmConfig } from '../src/orm-config.js'
import { createUserRepository, type UserRepository } from '../src/user-repository.js'

declare module 'fastify' {
  interface FastifyInstance {
    orm: MikroORM
    users: UserRepository
    databaseKind: 'postgresql' | 'pglite'
  }
}

export interface OrmPluginOptions {
  /** A postgres:// URL; the plugin creates the ORM, migrates, and closes it. */
  url?: string
  /** An ORM the host app owns (already migrated); never closed here. */
  orm?: MikroORM
}

export default fp(async function ormPlugin (fastify, opts: OrmPluginOptions) {
  let orm = opts.orm
  if (!orm) {
    if (!opts.url) throw new Error('orm plugin: pass `url` or `orm`')
    const created = await MikroORM.init(createOrmConfig(opts.url))
    fastify.addHook('onClose', async function closeOrm () {
      await created.close()
    })
    await created.getMigrator().up()
    orm = created
  }
  const theOrm = orm
  fastify.decorate('orm', theOrm)
  fastify.decorate('users', createUserRepository(theOrm))
  fastify.decorate('databaseKind', 'postgresql')
  // MikroORM's guide for Fastify: one EntityManager fork per request.
  fastify.addHook('onRequest', function ormContext (request, reply, done) {
    RequestContext.create(theOrm.em, done)
  })
}, { name: 'orm', dependencies: ['config'] })

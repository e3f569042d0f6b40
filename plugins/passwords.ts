import fp from 'fastify-plugin'
import { createPasswordHasher, type PasswordHasher } from '../src/password.js'

declare module 'fastify' {
  interface FastifyInstance {
    passwords: PasswordHasher
  }
}

export default fp(async function passwordsPlugin (fastify) {
  fastify.decorate('passwords', createPasswordHasher({
    concurrency: fastify.config.PASSWORD_HASH_CONCURRENCY,
    queue: fastify.config.PASSWORD_HASH_QUEUE
  }))
}, { name: 'passwords', dependencies: ['config'] })

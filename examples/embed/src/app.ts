import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import tollgate, { redisClientOptions } from 'tollgate'

/**
 * A shop API that embeds the Tollgate auth server under /id and protects its own routes with it.
 * Configured by the environment: DATA_DIR, and DATABASE_URL and REDIS_URL for real servers
 * (unset: Tollgate's embedded default, PGlite and an in-process token store under DATA_DIR).
 */
export async function buildApp (): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })

  // The host's own error and 404 shapes: Tollgate must leave them alone on the host's routes.
  app.setErrorHandler(function hostErrorHandler (err: FastifyError, request, reply) {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) request.log.error({ err }, 'host route failed')
    return reply.code(status).send({ host: 'error', status, message: status === 500 ? 'the shop failed' : err.message })
  })
  app.setNotFoundHandler(function hostNotFound (request, reply) {
    return reply.code(404).send({ host: 'not-found', url: request.url })
  })

  const redisUrl = process.env.REDIS_URL
  if (redisUrl) {
    // One client for the whole app; created to fail fast, so a Redis outage is a 503, never a hang.
    await app.register(fastifyRedis, { url: redisUrl, ...redisClientOptions })
  }

  await app.register(tollgate, {
    prefix: '/id',
    issuer: 'https://shop.example',
    audience: 'shop-api',
    dataDir: process.env.DATA_DIR ?? './.data',
    databaseUrl: process.env.DATABASE_URL,
    redisKeyPrefix: process.env.REDIS_KEY_PREFIX,
    redis: redisUrl ? app.redis : undefined
  })

  app.get('/orders', { onRequest: [app.authenticate] }, async function listOrders (request) {
    const id: string = request.user.id
    // @ts-expect-error `request.user` reaches the host typed, not as `any`: an unknown property does not compile
    if (request.user.nope !== undefined) throw new Error('unreachable')
    return { owner: id }
  })

  app.get('/boom', async function boom () {
    throw new Error('a bug in the shop')
  })

  return app
}

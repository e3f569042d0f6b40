import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import fp from 'fastify-plugin'

/** Security headers on every response, and CORS only for the origins CORS_ORIGINS names. */
export default fp(async function httpSecurityPlugin (fastify) {
  // Swagger UI sets its own, looser CSP on /docs (see plugins/swagger.ts).
  await fastify.register(helmet, { global: true })
  const origins = fastify.config.CORS_ORIGINS.split(',').filter(Boolean)
  await fastify.register(cors, {
    // No listed origin: no Access-Control-* headers at all.
    origin: origins.length > 0 ? origins : false,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type'],
    // Tokens travel in headers and bodies, never cookies.
    credentials: false,
    maxAge: 600
  })
}, { name: 'http-security', dependencies: ['config'] })

import cors from '@fastify/cors'
import fp from 'fastify-plugin'
import helmet from 'helmet'

/**
 * helmet's default headers (CSP, HSTS, nosniff, frame options…). They never depend on the request,
 * so they are computed once at boot and set in one hook, rather than by @fastify/helmet, which
 * rebuilds them on every request (8 % of an authenticated request's CPU, see BENCHMARKS.md).
 */
function helmetHeaders (): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader (name: string, value: string) { headers[name.toLowerCase()] = value },
    removeHeader (name: string) { delete headers[name.toLowerCase()] }
  }
  helmet()({} as never, response as never, () => {})
  return headers
}

/** Security headers on every response, and CORS only for the origins CORS_ORIGINS names. */
export default fp(async function httpSecurityPlugin (fastify) {
  const headers = helmetHeaders()
  // Swagger UI replaces the CSP with its own, looser one on /docs (see plugins/swagger.ts).
  fastify.addHook('onRequest', function securityHeaders (request, reply, done) {
    reply.headers(headers)
    done()
  })
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

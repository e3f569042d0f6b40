import cors from '@fastify/cors'
import fp from 'fastify-plugin'
import helmet from 'helmet'
import { OptionsError } from '../src/options.js'

/**
 * helmet's default headers (CSP, HSTS, nosniff, frame options…). They never depend on the request,
 * so they are computed once at boot and set in one hook, rather than by @fastify/helmet, which
 * rebuilds them on every request (8 % of an authenticated request's CPU, see BENCHMARKS.md).
 */
export function helmetHeaders (): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader (name: string, value: string) { headers[name.toLowerCase()] = value },
    removeHeader (name: string) { delete headers[name.toLowerCase()] }
  }
  helmet()({} as never, response as never, () => {})
  return headers
}

export interface HttpSecurityOptions {
  /** Origins allowed by CORS; none: no CORS at all (the host's own, if it has one, still applies). */
  corsOrigins: string[]
  /**
   * Cookie mode (REFRESH_COOKIE): those origins, and only those, may send credentials (the refresh
   * cookie) and the X-CSRF-Token header, and read the X-CSRF-Token response header (besides
   * Retry-After and WWW-Authenticate, exposed in either mode).
   */
  credentials?: boolean
}

/** Security headers on every response of the context it is registered in, and CORS for the origins named. */
export default fp(async function httpSecurityPlugin (fastify, { corsOrigins, credentials = false }: HttpSecurityOptions) {
  const headers = helmetHeaders()
  // Swagger UI replaces the CSP with its own, looser one on /docs (see plugins/swagger.ts).
  fastify.addHook('onRequest', function securityHeaders (request, reply, done) {
    reply.headers(headers)
    done()
  })
  // Not registered without origins: @fastify/cors cannot be registered twice in one app.
  if (corsOrigins.length === 0) return
  if (fastify.hasRequestDecorator('corsPreflightEnabled')) {
    throw new OptionsError(['corsOrigins: your app registers @fastify/cors already, and its policy covers Tollgate\'s routes too; leave corsOrigins unset'])
  }
  await fastify.register(cors, {
    // Only a listed origin is echoed, never `*`. With credentials, an unlisted origin gets no CORS
    // header at all (a list alone would still send Access-Control-Allow-Credentials to it).
    origin: credentials ? function listedOrigin (origin, done) { done(null, origin !== undefined && corsOrigins.includes(origin) ? origin : false) } : corsOrigins,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: credentials ? ['authorization', 'content-type', 'x-csrf-token'] : ['authorization', 'content-type'],
    // Without cookie mode tokens travel in headers and bodies only, so no credentials are allowed.
    credentials,
    // A page reads only safelisted response headers unless told: Retry-After (429, 503) and the
    // Bearer challenge (401) are part of the answers it must act on.
    exposedHeaders: credentials ? ['retry-after', 'www-authenticate', 'x-csrf-token'] : ['retry-after', 'www-authenticate'],
    maxAge: 600
  })
}, { name: 'tollgate-http-security', fastify: '5.x' })

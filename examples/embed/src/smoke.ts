import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'

// Starts the app on a free port and walks through it over real HTTP; any mismatch exits non-zero.
// The backends are the environment's (see app.ts): run.sh runs it on both.

const REQUEST_TIMEOUT_MS = 10_000
// A hung backend must fail the run, not stall CI.
const WATCHDOG_MS = 90_000

interface Answer {
  status: number
  body: any
  headers: Headers
}

async function call (base: string, method: string, path: string, { body, token }: { body?: unknown, token?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const res = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? null : JSON.parse(text), headers: res.headers }
}

function check (name: string, actual: unknown, expected: unknown) {
  assert.deepStrictEqual(actual, expected, name)
  console.log(`ok - ${name}`)
}

async function smoke (app: FastifyInstance, base: string) {
  check('the database the environment asked for', app.tollgate.databaseKind, process.env.DATABASE_URL ? 'postgresql' : 'pglite')
  const email = `smoke-${randomUUID()}@example.com`
  const password = 'correct horse battery staple'

  const registered = await call(base, 'POST', '/id/auth/register', { body: { email, password } })
  check('register: 201', registered.status, 201)
  const userId: string = registered.body.id

  const login = await call(base, 'POST', '/id/auth/login', { body: { email, password } })
  check('login: 200', login.status, 200)
  check('login: a bearer token pair', [login.body.token_type, typeof login.body.access_token, typeof login.body.refresh_token], ['Bearer', 'string', 'string'])
  const firstAccess: string = login.body.access_token
  if (process.env.REDIS_URL) {
    // The session went to Redis, through the client the host registered.
    const keys = await app.redis.keys(`${process.env.REDIS_KEY_PREFIX ?? 'tollgate'}:{${userId}}:*`)
    check('login: the session is in Redis', keys.length > 0, true)
  }

  check('host route with the token: 200, the owner', await call(base, 'GET', '/orders', { token: firstAccess }).then(r => [r.status, r.body]), [200, { owner: userId }])
  const anonymous = await call(base, 'GET', '/orders')
  check('host route without a token: 401 in the host\'s shape', [anonymous.status, anonymous.body.host], [401, 'error'])
  check('host route without a token: the Bearer challenge', anonymous.headers.get('www-authenticate'), 'Bearer realm="tollgate"')
  check('Tollgate route: /id/users/me', await call(base, 'GET', '/id/users/me', { token: firstAccess }).then(r => [r.status, r.body.id, r.body.email]), [200, userId, email])

  // Tollgate's errors keep Tollgate's shape under the prefix, whatever the host's handler does.
  const unknownSession = await call(base, 'DELETE', `/id/auth/sessions/${randomUUID()}`, { token: firstAccess })
  check('Tollgate 404: its own shape', [unknownSession.status, unknownSession.body.code, Object.keys(unknownSession.body).sort()], [404, 'SESSION_NOT_FOUND', ['code', 'error', 'message', 'statusCode']])
  const invalid = await call(base, 'POST', '/id/auth/register', { body: { email: `x-${email}`, password, admin: true } })
  check('Tollgate validation error: 400 in its own shape', [invalid.status, invalid.body.statusCode, invalid.body.code, invalid.body.error, typeof invalid.body.message], [400, 400, 'INVALID_REQUEST', 'Bad Request', 'string'])

  const refreshed = await call(base, 'POST', '/id/auth/refresh', { body: { refresh_token: login.body.refresh_token } })
  check('refresh: 200, a new pair', [refreshed.status, typeof refreshed.body.access_token, refreshed.body.refresh_token !== login.body.refresh_token], [200, 'string', true])
  const secondAccess: string = refreshed.body.access_token
  check('host route with the refreshed token: 200', (await call(base, 'GET', '/orders', { token: secondAccess })).status, 200)

  check('logout: 204', (await call(base, 'POST', '/id/auth/logout', { token: secondAccess })).status, 204)
  for (const [name, token] of [['the login token', firstAccess], ['the refreshed token', secondAccess]] as const) {
    const refused = await call(base, 'GET', '/orders', { token })
    check(`after logout, ${name}: 401 in the host's shape`, [refused.status, refused.body.host], [401, 'error'])
  }

  check('host 404 unchanged', await call(base, 'GET', '/no-such-page').then(r => [r.status, r.body]), [404, { host: 'not-found', url: '/no-such-page' }])
  console.log('# the host logs the error of /boom next, on purpose')
  check('host error handler answers the host\'s route', await call(base, 'GET', '/boom').then(r => [r.status, r.body]), [500, { host: 'error', status: 500, message: 'the shop failed' }])
}

async function main () {
  const watchdog = setTimeout(function timedOut () {
    console.error(`not ok - the smoke test did not finish within ${WATCHDOG_MS / 1000} s`)
    process.exit(1)
  }, WATCHDOG_MS)
  watchdog.unref()

  const app = await buildApp()
  try {
    const base = await app.listen({ host: '127.0.0.1', port: 0 })
    const backends = `${app.tollgate.databaseKind}, ${process.env.REDIS_URL ? 'Redis (the host\'s @fastify/redis client)' : 'in-process token store'}`
    console.log(`# embed smoke on ${base}: ${backends}`)
    await smoke(app, base)
  } finally {
    await app.close()
  }
}

main().catch(function failed (err) {
  console.error('not ok -', err)
  process.exitCode = 1
})

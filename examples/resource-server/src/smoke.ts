import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import tollgate from 'tollgate'
import tollgateVerify, { redisClientOptions } from 'tollgate/verify'

// A Tollgate server and a resource server that trusts it, both on free ports in this process,
// talking over real HTTP; they share only the server's JWKS URL and its Redis. Any mismatch exits
// non-zero.

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const ISSUER = 'https://id.example'
const AUDIENCE = 'orders-api'
const REQUEST_TIMEOUT_MS = 10_000
// A hung backend must fail the run, not stall CI.
const WATCHDOG_MS = 90_000

interface Answer {
  status: number
  body: any
  headers: Headers
}

async function call (url: string, { method = 'GET', body, token }: { method?: string, body?: unknown, token?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const res = await fetch(url, {
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

/** The auth server: Tollgate on its own, with Redis so that resource servers see its revocations. */
async function startAuthServer (dataDir: string, redisKeyPrefix: string): Promise<FastifyInstance> {
  const server = Fastify({ logger: { level: 'warn' } })
  await server.register(tollgate, { issuer: ISSUER, audience: AUDIENCE, dataDir, redis: REDIS_URL, redisKeyPrefix })
  await server.listen({ host: '127.0.0.1', port: 0 })
  return server
}

/** The resource server: no database, no routes of Tollgate's, no private key. */
async function startResourceServer (jwksUrl: string, redis: Redis, redisKeyPrefix: string): Promise<FastifyInstance> {
  const api = Fastify({ logger: { level: 'warn' } })
  await api.register(tollgateVerify, { jwksUrl, issuer: ISSUER, audience: AUDIENCE, redis, redisKeyPrefix })
  api.get('/orders', { onRequest: [api.authenticate] }, async function listOrders (request) {
    const owner: string = request.user.id
    return { owner }
  })
  await api.listen({ host: '127.0.0.1', port: 0 })
  return api
}

async function deleteKeys (redis: Redis, prefix: string) {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500)
    if (keys.length > 0) await redis.del(...keys)
    cursor = next
  } while (cursor !== '0')
}

async function main () {
  const watchdog = setTimeout(function timedOut () {
    console.error(`not ok - the smoke test did not finish within ${WATCHDOG_MS / 1000} s`)
    process.exit(1)
  }, WATCHDOG_MS)
  watchdog.unref()

  const dataDir = await mkdtemp(join(tmpdir(), 'tollgate-resource-server-'))
  // Its own keys in a shared Redis, removed afterwards.
  const redisKeyPrefix = `smoke-${randomBytes(6).toString('hex')}`
  const redis = new Redis(REDIS_URL, redisClientOptions)
  redis.on('error', function redisError (err) { console.error('# redis:', err.message) })
  const started: FastifyInstance[] = []
  try {
    const server = await startAuthServer(dataDir, redisKeyPrefix)
    started.push(server)
    const auth = `http://127.0.0.1:${portOf(server)}`
    const api = await startResourceServer(`${auth}/.well-known/jwks.json`, redis, redisKeyPrefix)
    started.push(api)
    const orders = `http://127.0.0.1:${portOf(api)}/orders`
    console.log(`# auth server ${auth}, resource server ${orders}, Redis key prefix ${redisKeyPrefix}`)

    const email = `smoke-${randomUUID()}@example.com`
    const password = 'correct horse battery staple'
    const registered = await call(`${auth}/auth/register`, { method: 'POST', body: { email, password } })
    check('register on the server: 201', registered.status, 201)
    const login = await call(`${auth}/auth/login`, { method: 'POST', body: { email, password } })
    check('login on the server: 200', login.status, 200)
    const token: string = login.body.access_token

    check('resource route with the token: 200, the user', await call(orders, { token }).then(r => [r.status, r.body]), [200, { owner: registered.body.id }])
    const anonymous = await call(orders)
    check('resource route without a token: 401 with the Bearer challenge', [anonymous.status, anonymous.headers.get('www-authenticate')], [401, 'Bearer realm="tollgate"'])

    check('logout on the server: 204', (await call(`${auth}/auth/logout`, { method: 'POST', token })).status, 204)
    // At once: the resource server asks the server's Redis on every request, no polling, no waiting.
    const refused = await call(orders, { token })
    check('the same token at the resource server right after logout: 401', [refused.status, refused.body.code], [401, 'INVALID_TOKEN'])
  } finally {
    for (const app of started.reverse()) await app.close()
    await deleteKeys(redis, redisKeyPrefix).catch(function cleanupFailed (err) { console.error('# could not delete the smoke test\'s Redis keys:', err.message) })
    redis.disconnect()
    await rm(dataDir, { recursive: true, force: true })
  }
}

function portOf (app: FastifyInstance): number {
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  return address.port
}

main().catch(function failed (err) {
  console.error('not ok -', err)
  process.exitCode = 1
})

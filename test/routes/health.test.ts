import t from 'tap'
import { assertErrorShape, closedPort } from '../fixtures.js'
import { bearer, build, createTestDatabase, registerAndLogin, testKeys } from '../helper.js'

t.test('GET /health/live is 200 while the process is up', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health/live' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(res.json(), { status: 'ok' })
})

t.test('GET /health/ready is 200 with every check up', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.notOk(res.headers['retry-after'])
  const body = res.json()
  t.same(Object.keys(body).sort(), ['backends', 'checks', 'status'])
  t.equal(body.status, 'ready')
  t.same(body.checks, { database: 'up', token_store: 'up' })
  t.same(body.backends, { database: 'postgresql', token_store: 'redis' })
})

t.test('with Redis unreachable the app boots, is not ready, and fails closed', async t => {
  const databaseUrl = await createTestDatabase(t)
  const keys = testKeys()
  // A working app on the same database and keys, to make a user and a real token pair.
  const healthy = await build(t, { config: { DATABASE_URL: databaseUrl }, keys })
  const { email, password, tokens } = await registerAndLogin(healthy)

  const port = await closedPort()
  const app = await build(t, { config: { DATABASE_URL: databaseUrl, REDIS_URL: `redis://127.0.0.1:${port}` }, keys })

  t.test('GET /health/live is still 200', async t => {
    const res = await app.inject({ method: 'GET', url: '/health/live' })
    t.equal(res.statusCode, 200)
  })

  t.test('GET /health/ready is 503 with Retry-After and token_store down', async t => {
    const res = await app.inject({ method: 'GET', url: '/health/ready' })
    t.equal(res.statusCode, 503)
    t.match(res.headers['content-type'], /^application\/json/)
    t.match(res.headers['retry-after'], /^\d+$/, 'Retry-After in seconds')
    const body = res.json()
    t.equal(body.status, 'unavailable')
    t.same(body.checks, { database: 'up', token_store: 'down' })
  })

  const protectedRoutes: Array<{ method: 'GET' | 'POST' | 'DELETE', url: string, payload?: Record<string, unknown> }> = [
    { method: 'GET', url: '/users/me' },
    { method: 'GET', url: '/auth/sessions' },
    { method: 'POST', url: '/auth/logout', payload: {} },
    { method: 'POST', url: '/auth/logout-all' },
    { method: 'DELETE', url: '/users/me', payload: { password } }
  ]
  for (const route of protectedRoutes) {
    t.test(`${route.method} ${route.url} with a valid access token is 503, never 200 or 500`, async t => {
      const res = await app.inject({ ...route, headers: bearer(tokens.access_token) })
      assertErrorShape(t, res, 503)
      t.match(res.headers['retry-after'], /^\d+$/, 'Retry-After in seconds')
      t.same(res.json(), { statusCode: 503, code: 'SERVICE_UNAVAILABLE', error: 'Service Unavailable', message: res.json().message })
      t.notMatch(res.body, /redis|ECONNREFUSED|127\.0\.0\.1/i, 'the cause is not revealed')
    })
  }

  t.test('the account still exists (DELETE /users/me did nothing)', async t => {
    const res = await healthy.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
    t.equal(res.statusCode, 200)
  })

  t.test('POST /auth/login with the right password is 503: no session without the allowlist', async t => {
    const res = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
    assertErrorShape(t, res, 503)
    t.match(res.headers['retry-after'], /^\d+$/)
    t.notOk(res.json().access_token, 'no token')
  })

  t.test('POST /auth/refresh is 503, not invalid_grant', async t => {
    const res = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: tokens.refresh_token } })
    t.equal(res.statusCode, 503)
    t.match(res.headers['retry-after'], /^\d+$/)
  })
})

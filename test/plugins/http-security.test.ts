import t from 'tap'
import { build } from '../helper.js'

t.test('security headers on API responses (helmet)', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health/live' })
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['x-frame-options'], 'SAMEORIGIN')
  t.match(res.headers['strict-transport-security'], /max-age=\d+/)
  t.match(res.headers['content-security-policy'], /default-src 'self'/)
  t.notOk(res.headers['x-powered-by'])
})

t.test('CORS: only the origins of CORS_ORIGINS get Access-Control headers', async t => {
  const app = await build(t, { config: { CORS_ORIGINS: 'https://app.example.com,http://localhost:5173' } })
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/auth/login',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com')
  t.match(preflight.headers['access-control-allow-methods'], /POST/)
  t.notOk(preflight.headers['access-control-allow-credentials'], 'no cookies are involved')

  const allowed = await app.inject({ method: 'GET', url: '/health/live', headers: { origin: 'http://localhost:5173' } })
  t.equal(allowed.headers['access-control-allow-origin'], 'http://localhost:5173')

  const other = await app.inject({ method: 'GET', url: '/health/live', headers: { origin: 'https://evil.example' } })
  t.equal(other.statusCode, 200)
  t.notOk(other.headers['access-control-allow-origin'], 'an unlisted origin gets no CORS grant')

  // The page must be able to read what tells it how to act on a 401 or a 429.
  const unauthorized = await app.inject({ method: 'GET', url: '/users/me', headers: { origin: 'https://app.example.com' } })
  t.equal(unauthorized.statusCode, 401)
  t.ok(unauthorized.headers['www-authenticate'])
  t.same(String(unauthorized.headers['access-control-expose-headers']).toLowerCase().split(/,\s*/).sort(), ['retry-after', 'www-authenticate'],
    'Retry-After and WWW-Authenticate are readable from the page')
})

t.test('CORS off by default', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health/live', headers: { origin: 'https://app.example.com' } })
  t.notOk(res.headers['access-control-allow-origin'])
})

t.test('the server\'s 404s carry the security headers too', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/no/such/route' })
  t.equal(res.statusCode, 404)
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.match(res.headers['content-security-policy'], /default-src 'self'/)
})

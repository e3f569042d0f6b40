import t from 'tap'
import { build } from '../helper.js'

t.test('a URL no route has: 404 in the error shape, with the security headers', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/no/such/route?x=1' })
  t.equal(res.statusCode, 404)
  t.strictSame(res.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'Route GET /no/such/route not found' })
  t.notOk('allow' in res.headers)
  t.equal(res.headers['x-content-type-options'], 'nosniff')
})

t.test('a URL that has routes for other methods: 405 with Allow (RFC 9110 §15.5.6)', async t => {
  const app = await build(t)
  const cases = [
    ['PUT', '/users/me', 'GET, HEAD, DELETE'],
    ['GET', '/auth/login', 'POST'],
    ['DELETE', '/auth/login?next=1', 'POST'],
    ['POST', '/auth/sessions/3f1c6a4e-0000-4000-8000-000000000000', 'DELETE'],
    ['PATCH', '/health/live', 'GET, HEAD']
  ] as const
  for (const [method, url, allow] of cases) {
    const res = await app.inject({ method, url })
    const path = url.split('?')[0]
    t.equal(res.statusCode, 405, `${method} ${url}: 405`)
    t.equal(res.headers.allow, allow, `${method} ${url}: Allow`)
    t.strictSame(res.json(), { statusCode: 405, code: 'METHOD_NOT_ALLOWED', error: 'Method Not Allowed', message: `Route ${method} ${path} not found; ${path} allows ${allow}` }, `${method} ${url}: the body`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${method} ${url}: security headers`)
  }
})

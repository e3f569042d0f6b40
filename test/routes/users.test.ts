import t from 'tap'
import { bearer, build, registerAndLogin } from '../helper.js'

t.test('GET /users/me returns the user of a valid access token', async t => {
  const app = await build(t)
  const { tokens, email, userId } = await registerAndLogin(app)
  const res = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()).sort(), ['created_at', 'email', 'id', 'name'])
  t.equal(res.json().email, email)
  t.equal(res.json().id, userId)
})

t.test('GET /users/me without a token is a 401 with WWW-Authenticate: Bearer', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/users/me' })
  t.equal(res.statusCode, 401)
  t.match(res.headers['www-authenticate'], /^Bearer /)
  t.same(res.json(), { statusCode: 401, code: 'INVALID_TOKEN', error: 'Unauthorized', message: 'An access token is required' })
})

import { join } from 'node:path'
import t from 'tap'
import { bearer, build, refresh, registerAndLogin, tempDir } from '../helper.js'

// The whole flow once more on the embedded default: PGlite and the in-process token store.
t.test('whole flow on PGlite and the in-process store', async t => {
  // A DATA_DIR that does not exist yet, with keys configured (so nothing else creates it first).
  const dataDir = join(await tempDir(t), 'not', 'yet')
  const app = await build(t, { config: { DATABASE_URL: undefined, REDIS_URL: undefined, DATA_DIR: dataDir } })

  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json().backends, { database: 'pglite', token_store: 'memory' })

  const { tokens, email } = await registerAndLogin(app)
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
  t.equal(me.statusCode, 200)
  t.equal(me.json().email, email)

  const rotated = await refresh(app, tokens.refresh_token)
  t.equal(rotated.statusCode, 200)
  t.equal(rotated.headers['cache-control'], 'no-store')
  const next = rotated.json()
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(next.access_token) })).statusCode, 200)

  const sessions = await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(next.access_token) })
  t.equal(sessions.statusCode, 200)
  t.equal(sessions.json().length, 1)
  t.equal(sessions.json()[0].current, true)

  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(next.access_token) })
  t.equal(logout.statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(next.access_token) })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })).statusCode, 401)
  for (const spent of [tokens.refresh_token, next.refresh_token]) {
    const res = await refresh(app, spent)
    t.equal(res.statusCode, 400)
    t.equal(res.json().error, 'invalid_grant')
  }
})

import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { serverOptions } from '../src/server.js'
import { bearer, build, registerAndLogin, testConfig } from './helper.js'

// Logs at the most verbose level through register, login, refresh, logout and failures must
// carry no password and no token.
t.test('no secret reaches the logs', async t => {
  const lines: string[] = []
  const logStream = new Writable({ write (chunk, _enc, done) { lines.push(chunk.toString()); done() } })
  const app = await build(t, { config: { LOG_LEVEL: 'trace' }, logStream })

  const password = 'pw-that-must-never-be-logged-1'
  const { email, tokens } = await registerAndLogin(app, { password })
  const rotated = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: tokens.refresh_token } })
  t.equal(rotated.statusCode, 200)
  const next = rotated.json()
  await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: 'wrong-password-also-secret' } })
  await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'not-an-email', password } })
  await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refresh_token: tokens.refresh_token } })
  await app.inject({ method: 'GET', url: '/users/me', headers: bearer(next.access_token) })
  await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(next.access_token), payload: { refresh_token: next.refresh_token } })
  await app.inject({ method: 'GET', url: '/users/me', headers: { ...bearer(next.access_token), cookie: 'session=cookie-secret' } })

  const log = lines.join('')
  t.ok(lines.length > 10, 'the requests were logged')
  for (const secret of [password, 'wrong-password-also-secret', tokens.access_token, tokens.refresh_token, next.access_token, next.refresh_token, 'cookie-secret']) {
    t.notOk(log.includes(secret), `log does not contain ${secret.slice(0, 12)}…`)
  }
  // Tokens' signatures alone must not leak either.
  for (const token of [tokens.access_token, next.refresh_token]) {
    t.notOk(log.includes(token.split('.')[2] as string))
  }
})

// Nothing above logs headers or bodies at all; this checks the second line of defence: should any
// code log them, the server's logger redacts them.
t.test('the server logger redacts credentials wherever a log call puts them', async t => {
  const lines: string[] = []
  const logStream = new Writable({ write (chunk, _enc, done) { lines.push(chunk.toString()); done() } })
  const app = await build(t, { config: { LOG_LEVEL: 'info' }, logStream })
  app.log.info({
    headers: { authorization: 'Bearer header-secret', cookie: 'sid=cookie-secret', 'user-agent': 'kept' },
    request: { headers: { authorization: 'Bearer nested-header-secret' } },
    body: { password: 'pw-secret', refresh_token: 'rt-secret', access_token: 'at-secret' },
    current_password: 'current-secret',
    new_password: 'new-secret'
  }, 'a careless log call')
  const log = lines.join('')
  t.match(log, /a careless log call/)
  t.match(log, /kept/, 'harmless fields stay')
  for (const secret of ['header-secret', 'nested-header-secret', 'cookie-secret', 'pw-secret', 'rt-secret', 'at-secret', 'current-secret', 'new-secret']) {
    t.notOk(log.includes(secret), `${secret} is redacted`)
  }
})

// LOG_LEVEL=silent skips the per-request child logger (a cost with nothing logged); a route that
// asks for a log level of its own still logs, with its request id.
t.test('LOG_LEVEL=silent: nothing logged, except by a route with a log level of its own', async t => {
  const lines: string[] = []
  const logStream = new Writable({ write (chunk, _enc, done) { lines.push(chunk.toString()); done() } })
  const app = Fastify(serverOptions(testConfig({ LOG_LEVEL: 'silent' }), {}, logStream))
  t.teardown(() => app.close())
  app.get('/quiet', async request => { request.log.error('from a quiet route'); return { ok: true } })
  app.get('/loud', { logLevel: 'info' }, async request => { request.log.info('from a loud route'); return { ok: true } })
  t.equal((await app.inject({ method: 'GET', url: '/quiet' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/loud' })).statusCode, 200)
  const log = lines.join('')
  t.notMatch(log, /from a quiet route/, 'silent: not logged')
  const loud = lines.map(line => JSON.parse(line) as { msg: string, reqId?: string }).find(entry => entry.msg === 'from a loud route')
  t.ok(loud, 'the route with logLevel info logs')
  t.match(loud?.reqId, /^req-/, 'with its request id')
})

// POST /auth/password: the current session survives, every other session ends, the old password stops working.
import t from 'tap'
import { bearer, login, registerAndLogin } from '../helper.js'
import {
  buildWithStore, expectAccessRevoked, expectAccessWorks, expectAllowlist, expectNoContent, expectRefreshRejected,
  expectRefreshWorks
} from '../flows/support.js'

const NEW_PASSWORD = 'a brand new passphrase'

t.test('a wrong current password is 401, a short new one 400, and neither changes anything', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const change = (body: Record<string, unknown>) => app.inject({ method: 'POST', url: '/auth/password', headers: bearer(a.access_token), payload: body })

  const wrong = await change({ current_password: 'not the password', new_password: NEW_PASSWORD })
  t.equal(wrong.statusCode, 401, 'wrong current password: 401')
  t.same(wrong.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'The password is incorrect' })
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token], 'after the wrong password')

  const short = await change({ current_password: password, new_password: 'short' })
  t.equal(short.statusCode, 400, 'too short: 400')
  t.equal(short.json().code, 'INVALID_REQUEST')
  t.match(short.json().message, /new_password/, 'the message names the field')
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token], 'after the short password')

  const missing = await change({ new_password: NEW_PASSWORD })
  t.equal(missing.statusCode, 400, 'no current password: 400')

  const anonymous = await app.inject({ method: 'POST', url: '/auth/password', payload: { current_password: password, new_password: NEW_PASSWORD } })
  t.equal(anonymous.statusCode, 401, 'without a token: 401')
  t.equal(anonymous.json().code, 'INVALID_TOKEN')

  await expectAccessWorks(t, app, a.access_token, userId, 'A still works')
  await expectAccessWorks(t, app, b.access_token, userId, 'B still works')
  await login(app, email, password)
  const bad = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: NEW_PASSWORD } })
  t.equal(bad.statusCode, 401, 'the rejected new password does not log in')
})

t.test('a password change keeps the current session and ends every other one', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const c = await login(app, email, password)
  const c2 = await expectRefreshWorks(t, app, c.refresh_token, 'C rotates once')
  await expectAllowlist(t, store, userId, [a.refresh_token, b.refresh_token, c2.refresh_token], 'three sessions')

  const res = await app.inject({ method: 'POST', url: '/auth/password', headers: bearer(a.access_token), payload: { current_password: password, new_password: NEW_PASSWORD } })
  expectNoContent(t, res, 'password change')
  await expectAllowlist(t, store, userId, [a.refresh_token], 'after the change: only the current session')

  await expectAccessWorks(t, app, a.access_token, userId, 'the current session')
  for (const [name, token] of [['B', b.access_token], ['C', c.access_token], ['C2', c2.access_token]] as const) {
    await expectAccessRevoked(t, app, token, `${name} access`)
  }
  for (const [name, token] of [['B', b.refresh_token], ['C', c.refresh_token], ['C2', c2.refresh_token]] as const) {
    await expectRefreshRejected(t, app, token, `${name} refresh`)
  }
  await expectAllowlist(t, store, userId, [a.refresh_token], 'after the other tokens were tried')

  const a2 = await expectRefreshWorks(t, app, a.refresh_token, 'the current session refreshes')
  await expectAllowlist(t, store, userId, [a2.refresh_token], 'after the current session rotated')
  await expectAccessWorks(t, app, a2.access_token, userId, 'the current session after rotation')

  const old = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
  t.equal(old.statusCode, 401, 'the old password no longer logs in')
  t.same(old.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Invalid email or password' })
  await expectAllowlist(t, store, userId, [a2.refresh_token], 'after the failed login')

  const fresh = await login(app, email, NEW_PASSWORD)
  await expectAccessWorks(t, app, fresh.access_token, userId, 'a login with the new password')
  await expectAllowlist(t, store, userId, [a2.refresh_token, fresh.refresh_token], 'after the new login')
})

// Issue 12: POST /auth/password and DELETE /users/me check the current password behind an access
// token, so they are throttled per account (ACCOUNT_RATE_LIMIT_*) like login, or a stolen access
// token would be a password oracle for its lifetime.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { bearer, build, login, redisClient, registerAndLogin, tempDir, type LoggedIn } from '../helper.js'

const RATE_LIMITED = { statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests', message: 'Too many requests; retry after the time in Retry-After' }
const NEW_PASSWORD = 'a brand new password'

type App = Awaited<ReturnType<typeof build>>

const changePassword = (app: App, user: LoggedIn, currentPassword: string, remoteAddress = '127.0.0.1') =>
  app.inject({ method: 'POST', url: '/auth/password', headers: bearer(user.tokens.access_token), payload: { current_password: currentPassword, new_password: NEW_PASSWORD }, remoteAddress })

const deleteAccount = (app: App, user: LoggedIn, password: string, remoteAddress = '127.0.0.1') =>
  app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(user.tokens.access_token), payload: { password }, remoteAddress })

const me = (app: App, user: LoggedIn) => app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.tokens.access_token) })

function assertLimited (t: Test, res: Awaited<ReturnType<typeof changePassword>>, message: string) {
  t.equal(res.statusCode, 429, message)
  t.same(res.json(), RATE_LIMITED)
  t.match(res.headers['retry-after'], /^[1-9]\d*$/)
  t.ok(Number(res.headers['retry-after']) <= 900, 'within ACCOUNT_RATE_LIMIT_WINDOW')
}

t.test('POST /auth/password: per account, from any address; the right password waits too', async t => {
  const app = await build(t, { config: { ACCOUNT_RATE_LIMIT_MAX: 3 } })
  const user = await registerAndLogin(app)
  for (const [i, address] of ['10.0.0.1', '10.0.0.2', '10.0.0.3'].entries()) {
    t.equal((await changePassword(app, user, `guess-${i}`, address)).statusCode, 401, `wrong guess ${i + 1} from ${address}`)
  }
  assertLimited(t, await changePassword(app, user, 'guess-4', '10.0.0.4'), 'a new address buys no new guesses')
  assertLimited(t, await changePassword(app, user, user.password, '10.0.0.5'), 'the right password is not checked either, so the limit cannot be probed')

  t.equal((await me(app, user)).statusCode, 200, 'the token still works')
  t.ok(await login(app, user.email, user.password), 'the password did not change')

  const other = await registerAndLogin(app)
  t.equal((await changePassword(app, other, other.password, '10.0.0.5')).statusCode, 204, 'another account is not affected')
})

t.test('DELETE /users/me: per account; once limited, the right password deletes nothing', async t => {
  const app = await build(t, { config: { ACCOUNT_RATE_LIMIT_MAX: 3 } })
  const user = await registerAndLogin(app)
  for (const [i, address] of ['10.0.0.1', '10.0.0.2', '10.0.0.3'].entries()) {
    t.equal((await deleteAccount(app, user, `guess-${i}`, address)).statusCode, 401, `wrong guess ${i + 1} from ${address}`)
  }
  assertLimited(t, await deleteAccount(app, user, 'guess-4', '10.0.0.4'), 'a new address buys no new guesses')
  assertLimited(t, await deleteAccount(app, user, user.password, '10.0.0.5'), 'the right password is not checked either')

  t.equal((await me(app, user)).statusCode, 200, 'the account still exists')
  t.ok(await login(app, user.email, user.password), 'and can still log in')

  const other = await registerAndLogin(app)
  t.equal((await deleteAccount(app, other, other.password, '10.0.0.5')).statusCode, 204, 'another account is not affected')
  t.equal((await me(app, other)).statusCode, 401, 'and is gone')
})

t.test('password change and account deletion share one budget per account', async t => {
  const app = await build(t, { config: { ACCOUNT_RATE_LIMIT_MAX: 3 } })
  const user = await registerAndLogin(app)
  t.equal((await changePassword(app, user, 'guess-1')).statusCode, 401)
  t.equal((await deleteAccount(app, user, 'guess-2')).statusCode, 401)
  t.equal((await changePassword(app, user, 'guess-3')).statusCode, 401)
  assertLimited(t, await deleteAccount(app, user, 'guess-4'), 'splitting guesses across the routes buys nothing')
  assertLimited(t, await changePassword(app, user, 'guess-5'), 'nor switching back')
})

t.test('another session of the same account shares the budget', async t => {
  const app = await build(t, { config: { ACCOUNT_RATE_LIMIT_MAX: 2 } })
  const user = await registerAndLogin(app)
  t.equal((await changePassword(app, user, 'guess-1')).statusCode, 401)
  t.equal((await changePassword(app, user, 'guess-2')).statusCode, 401)
  const second: LoggedIn = { ...user, tokens: await login(app, user.email, user.password) }
  assertLimited(t, await changePassword(app, second, 'guess-3'), 'a new access token buys no new guesses')
})

t.test('requests refused before the check do not spend the budget', async t => {
  const app = await build(t, { config: { ACCOUNT_RATE_LIMIT_MAX: 1 } })
  const user = await registerAndLogin(app)
  const anonymous = await app.inject({ method: 'POST', url: '/auth/password', payload: { current_password: 'guess', new_password: NEW_PASSWORD } })
  t.equal(anonymous.statusCode, 401, 'no token')
  const invalid = await app.inject({ method: 'POST', url: '/auth/password', headers: bearer(user.tokens.access_token), payload: { current_password: '' } })
  t.equal(invalid.statusCode, 400, 'invalid body')
  t.equal((await changePassword(app, user, user.password)).statusCode, 204, 'the one attempt is still there')
})

t.test('a rate-limit store failure is a 503, never a pass', async t => {
  const prefix = `t-${randomBytes(6).toString('hex')}`
  const app = await build(t, { config: { REDIS_KEY_PREFIX: prefix } })
  const user = await registerAndLogin(app)
  // Only this user's counter breaks (INCR on a hash is WRONGTYPE): the token check still passes.
  await (await redisClient(t)).hset(`${prefix}:rl:{password-check:${user.userId}}`, 'broken', '1')
  for (const res of [await changePassword(app, user, user.password), await deleteAccount(app, user, user.password)]) {
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'SERVICE_UNAVAILABLE')
    t.ok(res.headers['retry-after'])
  }
  t.equal((await me(app, user)).statusCode, 200, 'nothing was deleted')
  t.ok(await login(app, user.email, user.password), 'nor changed')
})

t.test('the embedded default limits in process', async t => {
  const app = await build(t, { config: { DATABASE_URL: undefined, REDIS_URL: undefined, DATA_DIR: await tempDir(t), ACCOUNT_RATE_LIMIT_MAX: 2 } })
  const user = await registerAndLogin(app)
  t.equal((await deleteAccount(app, user, 'guess-1')).statusCode, 401)
  t.equal((await changePassword(app, user, 'guess-2')).statusCode, 401)
  assertLimited(t, await deleteAccount(app, user, user.password), 'limited without Redis too')
  t.equal((await me(app, user)).statusCode, 200, 'the account still exists')
})

import { createHash, randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { assertErrorShape } from '../fixtures.js'
import { bearer, build, createTestDatabase, login, registerAndLogin, type TestApp } from '../helper.js'
import { captureLog, linkToken, startSmtpServer, type TestSmtpServer } from './support.js'

const PASSWORD = 'correct horse battery staple'
const APP_URL = 'https://app.example.com/accounts'
const DAY_MS = 24 * 60 * 60 * 1000

const newEmail = () => `verify-${randomUUID()}@example.com`

async function register (app: TestApp, email: string) {
  const res = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 201) throw new Error(`register: ${res.statusCode} ${res.body}`)
  return res.json() as { id: string, email_verified: boolean }
}

const verify = (app: TestApp, token: unknown) => app.inject({ method: 'POST', url: '/auth/email/verify', payload: { token } })
const sendLink = (app: TestApp, accessToken: string) => app.inject({ method: 'POST', url: '/auth/email/verify/send', headers: bearer(accessToken) })
const me = async (app: TestApp, accessToken: string) => (await app.inject({ method: 'GET', url: '/users/me', headers: bearer(accessToken) })).json()

/** The app on a real SMTP server that requires the credentials of SMTP_URL, with a clock the test moves. */
async function setup (t: Parameters<typeof build>[0], config: Record<string, string | number | boolean> = {}) {
  const smtp = await startSmtpServer(t, { credentials: { user: 'tollgate@example.com', pass: 'p@ss:w/rd' } })
  const clock = { now: Date.now() }
  const databaseUrl = await createTestDatabase(t)
  const app = await build(t, {
    config: { DATABASE_URL: databaseUrl, SMTP_URL: smtp.url, APP_URL, MAIL_FROM: 'Example <no-reply@example.com>', ...config },
    tollgate: { clock: () => clock.now }
  })
  return { app, smtp, clock, databaseUrl }
}

async function verificationToken (smtp: TestSmtpServer, email: string): Promise<string> {
  return linkToken((await smtp.nextMailTo(email)).text, 'verify-email')
}

t.test('registration mails a verification link; its token verifies the address once', async t => {
  const { app, smtp, databaseUrl } = await setup(t)
  const email = newEmail()
  const user = await register(app, email)
  t.equal(user.email_verified, false, 'a new account is unverified')

  const mail = await smtp.nextMailTo(email)
  t.equal(mail.from, '"Example" <no-reply@example.com>', 'From is MAIL_FROM')
  t.match(mail.subject, /confirm your email/i)
  t.match(mail.text, new RegExp(`${APP_URL}/verify-email\\?token=[A-Za-z0-9_-]{43}(\\s|$)`), 'the link is APP_URL/verify-email?token=…')
  t.same(smtp.logins, [{ username: 'tollgate@example.com', accepted: true }], 'the mailer logged in with the credentials of SMTP_URL')
  const token = linkToken(mail.text, 'verify-email')
  t.ok(Buffer.from(token, 'base64url').length >= 16, 'at least 128 bits')

  await t.test('only a SHA-256 of the token is stored', async t => {
    const db = new pg.Client({ connectionString: databaseUrl })
    await db.connect()
    t.teardown(() => db.end())
    const { rows } = await db.query('select * from link_tokens where user_id = $1', [user.id])
    t.equal(rows.length, 1)
    t.equal(rows[0].token_hash, createHash('sha256').update(token).digest('hex'))
    t.notOk(JSON.stringify(rows).includes(token), 'the token itself is nowhere in the row')
    t.equal(rows[0].purpose, 'verify_email')
  })

  const tokens = await login(app, email, PASSWORD)
  t.equal((await me(app, tokens.access_token)).email_verified, false)

  const res = await verify(app, token)
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.equal((await me(app, tokens.access_token)).email_verified, true, 'GET /users/me shows the address verified')

  const again = await verify(app, token)
  assertErrorShape(t, again, 400)
  t.equal(again.json().code, 'LINK_TOKEN_USED', 'single use')
})

t.test('unknown, malformed and wrong-purpose tokens', async t => {
  const { app, smtp } = await setup(t)

  const unknown = await verify(app, 'A'.repeat(43))
  assertErrorShape(t, unknown, 400)
  t.equal(unknown.json().code, 'LINK_TOKEN_UNKNOWN')

  for (const token of ['', 'not a token!', 'x'.repeat(257), 42, null]) {
    const res = await verify(app, token)
    assertErrorShape(t, res, 400)
    t.equal(res.json().code, 'INVALID_REQUEST', `${JSON.stringify(token)} is refused by the schema`)
  }

  // A password-reset token is no verification token.
  const email = newEmail()
  await register(app, email)
  await verificationToken(smtp, email)
  await app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email } })
  const resetToken = linkToken((await smtp.nextMailTo(email)).text, 'reset-password')
  const crossed = await verify(app, resetToken)
  t.equal(crossed.statusCode, 400)
  t.equal(crossed.json().code, 'LINK_TOKEN_UNKNOWN', 'a reset token does not verify')
})

t.test('a verification token expires after 24 hours (injected clock)', async t => {
  const { app, smtp, clock } = await setup(t)
  const late = newEmail()
  const inTime = newEmail()
  await register(app, late)
  await register(app, inTime)
  const lateToken = await verificationToken(smtp, late)
  const inTimeToken = await verificationToken(smtp, inTime)

  clock.now += DAY_MS - 1000
  t.equal((await verify(app, inTimeToken)).statusCode, 204, 'a second before the 24 hours: still valid')

  clock.now += 2000
  const expired = await verify(app, lateToken)
  assertErrorShape(t, expired, 400)
  t.equal(expired.json().code, 'LINK_TOKEN_EXPIRED')
})

t.test('POST /auth/email/verify/send mails a fresh link, at most once a minute; the older link is superseded', async t => {
  const { app, smtp } = await setup(t)
  const { email, tokens } = await registerAndLogin(app, { email: newEmail() })
  const first = await verificationToken(smtp, email)

  const res = await sendLink(app, tokens.access_token)
  t.equal(res.statusCode, 202)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(Object.keys(res.json()), ['message'])
  const second = await verificationToken(smtp, email)
  t.not(second, first, 'a new token')

  const limited = await sendLink(app, tokens.access_token)
  assertErrorShape(t, limited, 429)
  t.equal(limited.json().code, 'RATE_LIMITED')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After within the minute (${retryAfter})`)
  await app.tollgate.recovery.settled()
  t.equal(smtp.mailsTo(email).length, 2, 'the refused request sent nothing')

  const superseded = await verify(app, first)
  assertErrorShape(t, superseded, 400)
  t.equal(superseded.json().code, 'LINK_TOKEN_SUPERSEDED')
  t.equal((await verify(app, second)).statusCode, 204, 'the newest link works')
})

t.test('verification mails to one address: 3 an hour, whoever registers it again and again', async t => {
  // A stranger registers someone's address, deletes the account and registers it again: each time
  // a new user, whose per-user limit is fresh. The address's budget is not (security review).
  const smtp = await startSmtpServer(t)
  const log = captureLog()
  const app = await build(t, { config: { SMTP_URL: smtp.url, APP_URL, LOG_LEVEL: 'warn' }, logStream: log.stream })
  const email = newEmail()
  for (let i = 1; i <= 3; i++) {
    const { tokens } = await registerAndLogin(app, { email, password: PASSWORD })
    await verificationToken(smtp, email)
    t.equal((await app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(tokens.access_token), payload: { password: PASSWORD } })).statusCode, 204, `account ${i} deleted`)
  }
  const { userId, tokens } = await registerAndLogin(app, { email, password: PASSWORD })
  await app.tollgate.recovery.settled()
  t.equal(smtp.mailsTo(email).length, 3, 'the fourth registration was answered, but mailed nothing')
  const warning = await log.waitFor(line => line.msg.startsWith('mail not sent'))
  t.match(warning, { level: 40, msg: 'mail not sent: the address has had its verification mails for the hour', mail: { kind: 'verify_email', userId } })
  t.notOk(log.raw().includes(email), 'the address is in no log line')

  const limited = await sendLink(app, tokens.access_token)
  assertErrorShape(t, limited, 429)
  t.equal(limited.json().code, 'RATE_LIMITED')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter > 3000 && retryAfter <= 3600, `asking again: 429, Retry-After within the hour (${retryAfter})`)
  await app.tollgate.recovery.settled()
  t.equal(smtp.mailsTo(email).length, 3, 'and nothing sent')

  const other = newEmail()
  await registerAndLogin(app, { email: other })
  await verificationToken(smtp, other)
  t.pass('another address has its own budget')
})

t.test('POST /auth/email/verify/send needs an access token, and mails nothing to a verified address', async t => {
  const { app, smtp } = await setup(t)
  const anonymous = await app.inject({ method: 'POST', url: '/auth/email/verify/send' })
  assertErrorShape(t, anonymous, 401)
  t.match(anonymous.headers['www-authenticate'], /^Bearer /)

  const { email, tokens } = await registerAndLogin(app, { email: newEmail() })
  t.equal((await verify(app, await verificationToken(smtp, email))).statusCode, 204)
  const res = await sendLink(app, tokens.access_token)
  t.equal(res.statusCode, 202, 'the same answer')
  await app.tollgate.recovery.settled()
  t.equal(smtp.mailsTo(email).length, 1, 'no second mail')
})

t.test('REQUIRE_VERIFIED_EMAIL=true: an unverified account cannot log in, and learns so only with the right password', async t => {
  const { app, smtp } = await setup(t, { REQUIRE_VERIFIED_EMAIL: true })
  const email = newEmail()
  await register(app, email)
  const token = await verificationToken(smtp, email)

  const wrongPassword = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: 'wrong password!' } })
  const unknownUser = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: newEmail(), password: PASSWORD } })
  assertErrorShape(t, wrongPassword, 401)
  t.same(wrongPassword.json(), unknownUser.json(), 'a wrong password gets the generic 401, as an unknown address does')
  t.equal(wrongPassword.headers['www-authenticate'], unknownUser.headers['www-authenticate'])

  const unverified = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } })
  assertErrorShape(t, unverified, 403)
  t.equal(unverified.json().code, 'EMAIL_NOT_VERIFIED')
  t.notOk(unverified.json().access_token, 'no tokens')

  t.equal((await verify(app, token)).statusCode, 204)
  const verified = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } })
  t.equal(verified.statusCode, 200, 'verified: login works')
  t.type(verified.json().access_token, 'string')
})

t.test('REQUIRE_VERIFIED_EMAIL=true: the 403 names the way in without a login, a password reset, and it works', async t => {
  const { app, smtp } = await setup(t, { REQUIRE_VERIFIED_EMAIL: true })
  const email = newEmail()
  await register(app, email)
  await smtp.nextMailTo(email) // the verification mail, left unopened (as if its link had expired)

  const refused = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } })
  t.equal(refused.json().code, 'EMAIL_NOT_VERIFIED')
  t.match(refused.json().message, /password reset \(POST \/auth\/password\/forgot\)/, 'the message names the route')

  t.equal((await app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email } })).statusCode, 202)
  const resetToken = linkToken((await smtp.nextMailTo(email)).text, 'reset-password')
  const newPassword = 'another long passphrase'
  const reset = await app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token: resetToken, new_password: newPassword } })
  t.equal(reset.statusCode, 204)
  const loggedIn = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: newPassword } })
  t.equal(loggedIn.statusCode, 200, 'the reset verified the address: login works')
  t.equal((await me(app, loggedIn.json().access_token)).email_verified, true)
})

t.test('REQUIRE_VERIFIED_EMAIL unset: an unverified account logs in (the default)', async t => {
  const { app } = await setup(t)
  const email = newEmail()
  await register(app, email)
  const tokens = await login(app, email, PASSWORD)
  t.equal((await me(app, tokens.access_token)).email_verified, false)
})

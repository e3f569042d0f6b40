import { createHash, randomBytes, randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import pg from 'pg'
import t from 'tap'
import tollgate from '../../plugins/tollgate.js'
import { DependencyError } from '../../src/errors.js'
import { createMemoryTokenStore } from '../../src/token-store/memory.js'
import { until } from '../faults/redis-topologies.js'
import { expectUnavailable } from '../faults/support.js'
import { assertErrorShape, assertInvalidGrant, assertRejectedAccessToken } from '../fixtures.js'
import { bearer, build, createTestDatabase, login, pluginOptions, refresh, registerAndLogin } from '../helper.js'
import { captureLog, linkToken, startSmtpServer, type TestSmtpServer } from './support.js'

const PASSWORD = 'correct horse battery staple'
const NEW_PASSWORD = 'a brand new passphrase'
const APP_URL = 'https://app.example.com'
const MINUTE_MS = 60 * 1000

const newEmail = () => `reset-${randomUUID()}@example.com`

const forgot = (app: FastifyInstance, email: string, ip = '127.0.0.1') =>
  app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email }, remoteAddress: ip })
const reset = (app: FastifyInstance, token: unknown, newPassword: unknown = NEW_PASSWORD) =>
  app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token, new_password: newPassword } })
const loginAnswer = (app: FastifyInstance, email: string, password: string) =>
  app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })

async function setup (t: Parameters<typeof build>[0], config: Record<string, string | number | boolean> = {}) {
  const smtp = await startSmtpServer(t)
  const clock = { now: Date.now() }
  const app = await build(t, { config: { SMTP_URL: smtp.url, APP_URL, ...config }, tollgate: { clock: () => clock.now } })
  return { app, smtp, clock }
}

/** A user who has read (and so taken) the verification mail of the registration. */
async function userWithSessions (app: FastifyInstance, smtp: TestSmtpServer, sessions = 2) {
  const user = await registerAndLogin(app, { email: newEmail() })
  await smtp.nextMailTo(user.email)
  const others = []
  for (let i = 1; i < sessions; i++) others.push(await login(app, user.email, PASSWORD))
  return { ...user, sessions: [user.tokens, ...others] }
}

async function resetToken (app: FastifyInstance, smtp: TestSmtpServer, email: string): Promise<string> {
  const res = await forgot(app, email)
  if (res.statusCode !== 202) throw new Error(`forgot: ${res.statusCode} ${res.body}`)
  return linkToken((await smtp.nextMailTo(email)).text, 'reset-password')
}

t.test('forgot → mailed link → reset: the new password works, the old one and every old session do not', async t => {
  const { app, smtp } = await setup(t)
  const user = await userWithSessions(app, smtp, 2)

  const accepted = await forgot(app, user.email)
  t.equal(accepted.statusCode, 202)
  const mail = await smtp.nextMailTo(user.email)
  t.match(mail.subject, /reset your password/i)
  t.match(mail.text, new RegExp(`${APP_URL}/reset-password\\?token=[A-Za-z0-9_-]{43}(\\s|$)`), 'the link is APP_URL/reset-password?token=…')
  const token = linkToken(mail.text, 'reset-password')

  const res = await reset(app, token)
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')

  t.test('every session has ended: refresh tokens and access tokens are refused', async t => {
    for (const session of user.sessions) {
      assertInvalidGrant(t, await refresh(app, session.refresh_token))
      assertRejectedAccessToken(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(session.access_token) }))
    }
  })

  t.test('the old password is refused, the new one logs in, and the address counts as verified', async t => {
    const old = await loginAnswer(app, user.email, PASSWORD)
    assertErrorShape(t, old, 401)
    t.equal(old.json().code, 'INVALID_CREDENTIALS')
    const tokens = await login(app, user.email, NEW_PASSWORD)
    const me = (await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })).json()
    t.equal(me.email_verified, true, 'the link proved the address')
  })

  t.test('the owner is told by mail, without the password', async t => {
    const notice = await smtp.nextMailTo(user.email)
    t.match(notice.subject, /password was reset/i)
    t.notOk(notice.text.includes(NEW_PASSWORD))
    t.notMatch(notice.text, /token=/, 'no link to use')
  })

  t.test('the token works once', async t => {
    const again = await reset(app, token, 'yet another passphrase')
    assertErrorShape(t, again, 400)
    t.equal(again.json().code, 'LINK_TOKEN_USED')
    await login(app, user.email, NEW_PASSWORD)
  })
})

t.test('a newer request supersedes the older link', async t => {
  const { app, smtp } = await setup(t)
  const user = await userWithSessions(app, smtp, 1)
  const older = await resetToken(app, smtp, user.email)
  const newer = await resetToken(app, smtp, user.email)
  t.not(older, newer)

  const superseded = await reset(app, older)
  assertErrorShape(t, superseded, 400)
  t.equal(superseded.json().code, 'LINK_TOKEN_SUPERSEDED')
  await login(app, user.email, PASSWORD)
  t.equal((await reset(app, newer)).statusCode, 204, 'the newest link works')
})

t.test('a reset token expires after 30 minutes (injected clock)', async t => {
  const { app, smtp, clock } = await setup(t)
  const late = await userWithSessions(app, smtp, 1)
  const inTime = await userWithSessions(app, smtp, 1)
  const lateToken = await resetToken(app, smtp, late.email)
  const inTimeToken = await resetToken(app, smtp, inTime.email)

  clock.now += 30 * MINUTE_MS - 1000
  t.equal((await reset(app, inTimeToken)).statusCode, 204, 'a second before the 30 minutes: still valid')

  clock.now += 2000
  const expired = await reset(app, lateToken)
  assertErrorShape(t, expired, 400)
  t.equal(expired.json().code, 'LINK_TOKEN_EXPIRED')
  await login(app, late.email, PASSWORD)
})

t.test('unknown and verification tokens are refused, and a bad new password leaves the token usable', async t => {
  const { app, smtp } = await setup(t)
  const unknown = await reset(app, 'B'.repeat(43))
  assertErrorShape(t, unknown, 400)
  t.equal(unknown.json().code, 'LINK_TOKEN_UNKNOWN')

  const email = newEmail()
  await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })
  const verificationToken = linkToken((await smtp.nextMailTo(email)).text, 'verify-email')
  const crossed = await reset(app, verificationToken)
  t.equal(crossed.json().code, 'LINK_TOKEN_UNKNOWN', 'a verification token resets nothing')

  const token = await resetToken(app, smtp, email)
  for (const password of ['short', 'x'.repeat(129), 12345678]) {
    const refused = await reset(app, token, password)
    assertErrorShape(t, refused, 400)
    t.equal(refused.json().code, 'INVALID_REQUEST', `${JSON.stringify(password)}: the password rules of registration`)
  }
  const missing = await app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token } })
  t.equal(missing.json().code, 'INVALID_REQUEST', 'new_password is required')
  t.equal((await reset(app, token)).statusCode, 204, 'the token was not spent by the refused requests')
})

t.test('no enumeration: a known and an unknown address get the same answer; only the known one gets a mail', async t => {
  const { app, smtp } = await setup(t)
  const user = await userWithSessions(app, smtp, 1)
  const stranger = newEmail()

  const known = await forgot(app, user.email)
  const unknown = await forgot(app, stranger)
  t.equal(known.statusCode, 202)
  t.equal(unknown.statusCode, known.statusCode, 'same status')
  t.equal(unknown.body, known.body, 'same body, byte for byte')
  const headers = (res: typeof known) => Object.fromEntries(Object.entries(res.headers).filter(([name]) => name !== 'date'))
  t.same(headers(unknown), headers(known), 'same headers (but Date)')

  await app.tollgate.recovery.settled()
  t.equal(smtp.mailsTo(user.email).length, 2, 'the known address got its link (after the verification mail)')
  t.same(smtp.mailsTo(stranger), [], 'the unknown address got nothing')
})

t.test('rate limits: 3 an hour per address (known or not, same answer, its own budget), and per client IP', async t => {
  // Login's per-account budget (ACCOUNT_RATE_LIMIT_MAX) is left huge, as in every test: not the one used here.
  const { app, smtp } = await setup(t, { RATE_LIMIT_MAX: 5 })
  const user = await userWithSessions(app, smtp, 1)
  const stranger = newEmail()

  for (const email of [user.email, stranger]) {
    t.equal((await forgot(app, email, '10.0.0.1')).statusCode, 202)
    t.equal((await forgot(app, email, '10.0.0.2')).statusCode, 202)
    t.equal((await forgot(app, email, '10.0.0.3')).statusCode, 202)
  }
  // Fourth request for each address, from a fourth client, spelt in capitals: the same address.
  const knownLimited = await forgot(app, user.email.toUpperCase(), '10.0.0.4')
  const unknownLimited = await forgot(app, stranger.toUpperCase(), '10.0.0.4')
  assertErrorShape(t, knownLimited, 429)
  t.equal(knownLimited.json().code, 'RATE_LIMITED')
  t.ok(Number(knownLimited.headers['retry-after']) >= 1, 'Retry-After')
  t.equal(unknownLimited.statusCode, 429, 'an unknown address is limited the same')
  t.equal(unknownLimited.body, knownLimited.body)
  t.equal(unknownLimited.headers['retry-after'] !== undefined, true)

  const ip = '10.0.0.9'
  for (let i = 0; i < 5; i++) t.equal((await forgot(app, newEmail(), ip)).statusCode, 202)
  const ipLimited = await forgot(app, newEmail(), ip)
  assertErrorShape(t, ipLimited, 429)
  t.ok(Number(ipLimited.headers['retry-after']) >= 1, 'Retry-After')

  await app.tollgate.recovery.settled()
  t.equal(smtp.mailsTo(user.email).length, 4, 'the known address got one link per accepted request (after the verification mail), none for the refused one')
})

t.test('the link routes (verify, reset) are limited per client IP too', async t => {
  const { app } = await setup(t, { RATE_LIMIT_MAX: 2 })
  const unknownToken = () => randomBytes(32).toString('base64url')
  const routes = {
    '/auth/email/verify': () => ({ token: unknownToken() }),
    '/auth/password/reset': () => ({ token: unknownToken(), new_password: NEW_PASSWORD })
  }
  for (const [url, body] of Object.entries(routes)) {
    const send = (remoteAddress: string) => app.inject({ method: 'POST', url, payload: body(), remoteAddress })
    for (let i = 1; i <= 2; i++) t.equal((await send('10.0.1.1')).json().code, 'LINK_TOKEN_UNKNOWN', `${url}: attempt ${i}, an unknown token`)
    const limited = await send('10.0.1.1')
    assertErrorShape(t, limited, 429)
    t.ok(Number(limited.headers['retry-after']) >= 1, `${url}: the third, 429 with Retry-After`)
    t.equal((await send('10.0.1.2')).json().code, 'LINK_TOKEN_UNKNOWN', `${url}: another address is not limited`)
  }
})

t.test('the token store failing during a reset: 503, nothing changed, and the same link works afterwards', async t => {
  const smtp = await startSmtpServer(t)
  // The in-process store, with its endSessions failing as Redis's does when Redis is down.
  const store = createMemoryTokenStore({ idleTtl: 3_600_000, reuseInterval: 0, absoluteTtl: 3_600_000 })
  t.teardown(() => store.close())
  let storeDown = false
  const tokenStore = {
    ...store,
    endSessions: async (end: Parameters<typeof store.endSessions>[0]) => {
      if (storeDown) throw new DependencyError('redis', new Error('connect ECONNREFUSED'))
      return store.endSessions(end)
    }
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tollgate, await pluginOptions(t, { tokenStore, smtpUrl: smtp.url }))
  await app.ready()

  const user = await userWithSessions(app, smtp, 1)
  const token = await resetToken(app, smtp, user.email)

  storeDown = true
  expectUnavailable(t, await reset(app, token), 'reset while the store is down')
  storeDown = false

  await login(app, user.email, PASSWORD)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.tokens.access_token) })).statusCode, 200, 'the old session still works: nothing happened')
  t.equal((await reset(app, token)).statusCode, 204, 'the same link works once the store is back')
  assertRejectedAccessToken(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.tokens.access_token) }))
})

t.test('a password change supersedes the live reset links', async t => {
  const { app, smtp } = await setup(t)
  const user = await userWithSessions(app, smtp, 1)
  const change = (current: string, next: string) => app.inject({
    method: 'POST', url: '/auth/password', headers: bearer(user.tokens.access_token), payload: { current_password: current, new_password: next }
  })

  const kept = await resetToken(app, smtp, user.email)
  t.equal((await change(PASSWORD, 'changed passphrase 2')).statusCode, 204)
  const superseded = await reset(app, kept)
  assertErrorShape(t, superseded, 400)
  t.equal(superseded.json().code, 'LINK_TOKEN_SUPERSEDED', 'the link mailed before the change no longer works')
  await login(app, user.email, 'changed passphrase 2')
  t.equal((await loginAnswer(app, user.email, NEW_PASSWORD)).statusCode, 401, 'the link set nothing')

  const fresh = await resetToken(app, smtp, user.email)
  t.equal((await reset(app, fresh)).statusCode, 204, 'a link asked for after the change works')
})

t.test('a refused password change does not supersede the reset link', async t => {
  const { app, smtp } = await setup(t)
  const user = await userWithSessions(app, smtp, 1)
  const token = await resetToken(app, smtp, user.email)
  const refused = await app.inject({
    method: 'POST', url: '/auth/password', headers: bearer(user.tokens.access_token), payload: { current_password: 'not the password', new_password: 'changed passphrase' }
  })
  t.equal(refused.statusCode, 401)
  t.equal((await reset(app, token)).statusCode, 204, 'the link still works')
})

t.test('a reset and a concurrent link request lock in one order: no deadlock, never a 500', async t => {
  const log = captureLog()
  const smtp = await startSmtpServer(t)
  const databaseUrl = await createTestDatabase(t)
  const app = await build(t, { config: { DATABASE_URL: databaseUrl, SMTP_URL: smtp.url, APP_URL, LOG_LEVEL: 'warn' }, logStream: log.stream })
  const user = await userWithSessions(app, smtp, 1)
  const token = await resetToken(app, smtp, user.email)
  const connect = async () => {
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    t.teardown(() => client.end())
    return client
  }
  const issuer = await connect()
  const monitor = await connect()

  // What issuing a link does, held open: the user's row first, then the user's link tokens.
  await issuer.query('begin')
  await issuer.query('select id from users where id = $1 for update', [user.userId])
  const pending = reset(app, token)
  // The reset queues behind that lock; had it taken its token row first (the old order), the
  // issuer's update below would wait for the reset, the reset for the issuer: a deadlock.
  await until(async () => (await monitor.query(
    "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")).rows[0].n > 0,
  30_000, 'the reset to wait for the user\'s row')
  await issuer.query(`update link_tokens set superseded_at = now()
                      where user_id = $1 and purpose = 'reset_password' and used_at is null and superseded_at is null`, [user.userId])
  await issuer.query('commit')

  const res = await pending
  assertErrorShape(t, res, 400)
  t.equal(res.json().code, 'LINK_TOKEN_SUPERSEDED', 'the reset sees the newer link, after it')
  await login(app, user.email, PASSWORD)
  t.notOk(log.lines().some(line => /transaction aborted/.test(line.msg)), 'no deadlock: PostgreSQL aborted nothing')
})

t.test('a database error during a reset is logged without its SQL: no hash, token hash or address', async t => {
  const log = captureLog()
  const smtp = await startSmtpServer(t)
  const databaseUrl = await createTestDatabase(t)
  const app = await build(t, { config: { DATABASE_URL: databaseUrl, SMTP_URL: smtp.url, APP_URL, LOG_LEVEL: 'info' }, logStream: log.stream })
  const user = await userWithSessions(app, smtp, 1)
  const token = await resetToken(app, smtp, user.email)

  // A broken schema: the reset's update of the user fails inside PostgreSQL (42703).
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  await db.query('alter table users rename column email_verified to email_verified_gone')

  const res = await reset(app, token)
  assertErrorShape(t, res, 500)
  const failure = await log.waitFor(line => line.msg === 'request failed')
  t.match(failure.err, { code: '42703', message: /column "email_verified" of relation "users" does not exist/ }, 'the code and the database\'s own words')
  const raw = log.raw()
  t.notMatch(raw, /\$argon2/, 'no password hash in the log')
  t.notOk(raw.includes(createHash('sha256').update(token).digest('hex')), 'no token hash')
  t.notOk(raw.includes(token), 'no token')
  t.notOk(raw.includes(user.email), 'no address')
  t.notMatch(raw, /update users set/, 'no SQL')
})

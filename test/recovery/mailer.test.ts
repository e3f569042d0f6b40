import { randomUUID } from 'node:crypto'
import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'
import { createMailer } from '../../src/mail/mailer.js'
import { parseSmtpUrl } from '../../src/mail/smtp-url.js'
import { OptionsError, configFromOptions } from '../../src/options.js'
import { closedPort } from '../fixtures.js'
import { build, tempDir, type TestApp } from '../helper.js'
import { captureLog, firstLink, linkToken, startSmtpServer, type LogLine } from './support.js'

const PASSWORD = 'correct horse battery staple'
const SMTP_PASSWORD = 'smtp-s3cret-Pa55word'
const newEmail = () => `mail-${randomUUID()}@example.com`

const register = (app: TestApp, email: string) => app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })
const forgot = (app: TestApp, email: string) => app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email } })

/** The problems a configuration (or options) error names; none when it is valid. */
function problemsOf (load: () => unknown): string[] {
  try {
    load()
    return []
  } catch (err) {
    if (err instanceof ConfigError || err instanceof OptionsError) return err.problems
    throw err
  }
}

/** A logger for createMailer that keeps what it is told. */
function memoryLog () {
  const lines: Array<{ level: 'info' | 'warn' | 'error', details: Record<string, unknown>, message: string }> = []
  const at = (level: 'info' | 'warn' | 'error') => (details: object, message: string) => { lines.push({ level, details: details as Record<string, unknown>, message }) }
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error') } }
}

t.test('SMTP down: the requests answer as usual, the failure is logged (never the SMTP password) and retried', async t => {
  const log = captureLog()
  const smtpUrl = `smtp://tollgate:${SMTP_PASSWORD}@127.0.0.1:${await closedPort()}`
  const app = await build(t, { config: { SMTP_URL: smtpUrl, LOG_LEVEL: 'info' }, logStream: log.stream })

  const email = newEmail()
  const registered = await register(app, email)
  t.equal(registered.statusCode, 201, 'registration answers 201 without its mail')
  const known = await forgot(app, email)
  const unknown = await forgot(app, newEmail())
  t.equal(known.statusCode, 202)
  t.equal(known.body, unknown.body, 'the same answer as ever')

  const failed = await log.waitFor(line => line.msg === 'mail not sent: will retry' && (line.mail as { kind: string }).kind === 'reset_password')
  t.equal(failed.level, 40, 'a warning')
  t.equal(failed.attempt, 1)
  t.ok((failed.retryInMs as number) > 0, 'a retry is scheduled')
  t.match(failed.err, { code: 'ESOCKET' }, 'why it failed')
  t.notOk('to' in (failed.mail as object), 'no address in the log')
  const retried = await log.waitFor(line => line.msg === 'mail not sent: will retry' && line.attempt === 2)
  t.ok(retried, 'and retried')

  await app.close()
  t.ok(log.lines().some(line => line.msg === 'mail not sent: shutting down before its retry'), 'a retry dropped at shutdown is logged')
  t.notOk(log.raw().includes(SMTP_PASSWORD), 'the SMTP password is in no log line')
  t.notOk(log.raw().includes(encodeURIComponent(SMTP_PASSWORD)), 'nor encoded')
})

t.test('wrong SMTP credentials: logged without them, and retried', async t => {
  const smtp = await startSmtpServer(t, { credentials: { user: 'tollgate', pass: 'the-right-one' } })
  const log = captureLog()
  const url = smtp.url.replace('the-right-one', SMTP_PASSWORD)
  const app = await build(t, { config: { SMTP_URL: url, LOG_LEVEL: 'info' }, logStream: log.stream })
  t.equal((await register(app, newEmail())).statusCode, 201)
  const failed = await log.waitFor(line => line.msg === 'mail not sent: will retry')
  t.match(failed.err, { code: 'EAUTH' })
  t.same(smtp.received, [])
  t.notOk(log.raw().includes(SMTP_PASSWORD), 'the password is in no log line')
})

t.test('the mailer retries with backoff until the server takes the mail, then gives up after the last retry', async t => {
  const smtp = await startSmtpServer(t, { failFirst: 2 })
  const settings = parseSmtpUrl(smtp.url)
  t.ok(settings)
  const { lines, log } = memoryLog()
  const mailer = createMailer({ smtp: settings ?? undefined, from: 'test@example.com', log, retryDelaysMs: [10, 20, 40] })
  t.teardown(() => mailer.close())

  mailer.send({ to: 'someone@example.com', subject: 'Hello', text: 'Secret link: https://app/x?token=abc' }, { kind: 'test', userId: 'u1' })
  await mailer.settled()
  t.equal(smtp.received.length, 1, 'delivered on the third attempt')
  t.same(lines.map(line => [line.level, line.message, line.details.attempt]), [
    ['warn', 'mail not sent: will retry', 1],
    ['warn', 'mail not sent: will retry', 2],
    ['info', 'mail sent', 3]
  ])
  t.same(lines[0]?.details.retryInMs, 10)
  t.same(lines[1]?.details.retryInMs, 20, 'further apart each time')
  t.notOk(JSON.stringify(lines).includes('token=abc'), 'the text of a mail is never logged')
  t.notOk(JSON.stringify(lines).includes('someone@example.com'), 'nor its address')

  await t.test('gives up after the last retry, and says so', async t => {
    const always = await startSmtpServer(t, { failFirst: 1000 })
    const { lines, log } = memoryLog()
    const failing = createMailer({ smtp: parseSmtpUrl(always.url) ?? undefined, from: 'test@example.com', log, retryDelaysMs: [5, 5] })
    t.teardown(() => failing.close())
    failing.send({ to: 'someone@example.com', subject: 'Hello', text: 'x' }, { kind: 'test', userId: 'u1' })
    await failing.settled()
    t.same(lines.map(line => [line.level, line.message, line.details.attempt]), [
      ['warn', 'mail not sent: will retry', 1],
      ['warn', 'mail not sent: will retry', 2],
      ['error', 'mail not sent: giving up', 3]
    ])
    t.match(lines[2]?.details.err, { responseCode: 451 })
  })
})

/** The dev-outbox line of the mail whose text has a `page` link, and the other lines. */
function outbox (lines: LogLine[], page: string) {
  const isOutbox = (line: LogLine) => line.msg.startsWith('development outbox')
  const mail = lines.find(line => isOutbox(line) && (line.devOutbox as { text: string }).text.includes(`/${page}?token=`))
  return { mail, others: lines.filter(line => line !== mail) }
}

t.test('the embedded default without SMTP_URL: mails go to the log at info as the development outbox, the only log line with the token', async t => {
  const log = captureLog()
  const dataDir = await tempDir(t)
  const app = await build(t, { config: { DATABASE_URL: undefined, REDIS_URL: undefined, DATA_DIR: dataDir, LOG_LEVEL: 'info', APP_URL: 'http://localhost:5173' }, logStream: log.stream })
  t.ok(log.lines().some(line => line.level === 40 && /no SMTP_URL: mails are not sent but written to this log/.test(line.msg)), 'a warning at boot says mails are only logged')

  const email = newEmail()
  t.equal((await register(app, email)).statusCode, 201)
  await app.tollgate.recovery.settled()
  const { mail } = outbox(log.lines(), 'verify-email')
  if (!mail) throw new Error('no outbox line')
  t.equal(mail.level, 30, 'at info')
  t.match(mail.msg, /development outbox/)
  const devOutbox = mail.devOutbox as { to: string, subject: string, text: string }
  t.same(Object.keys(devOutbox).sort(), ['subject', 'text', 'to'], 'the mail, nothing else')
  t.equal(devOutbox.to, email)
  t.match(firstLink(devOutbox.text), /^http:\/\/localhost:5173\/verify-email\?token=[A-Za-z0-9_-]{43}$/, 'the whole link is shown')
  const token = linkToken(devOutbox.text, 'verify-email')

  const verified = await app.inject({ method: 'POST', url: '/auth/email/verify', payload: { token } })
  t.equal(verified.statusCode, 204, 'the logged link works')
  const { others } = outbox(log.lines(), 'verify-email')
  t.notOk(JSON.stringify(others).includes(token), 'no other log line has the token (the request that carried it included)')
  t.ok(others.some(line => (line.req as { url?: string } | undefined)?.url === '/auth/email/verify'), 'the verify request itself was logged')

  const reset = await forgot(app, email)
  t.equal(reset.statusCode, 202)
  await app.tollgate.recovery.settled()
  const resetLine = outbox(log.lines(), 'reset-password')
  if (!resetLine.mail) throw new Error('no reset outbox line')
  const resetToken = linkToken((resetLine.mail.devOutbox as { text: string }).text, 'reset-password')
  t.equal((await app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token: resetToken, new_password: 'another good passphrase' } })).statusCode, 204)
  const afterReset = outbox(log.lines(), 'reset-password').others
  t.notOk(JSON.stringify(afterReset).includes(resetToken), 'nor of the reset token')
  t.notOk(log.raw().includes('another good passphrase'), 'passwords stay redacted')
})

t.test('DATABASE_URL without SMTP_URL: mail is off; nothing is sent, and no log line has a link, a token or an address', async t => {
  const log = captureLog()
  const app = await build(t, { config: { LOG_LEVEL: 'trace' }, logStream: log.stream })
  t.equal(app.tollgate.databaseKind, 'postgresql')
  const boot = log.lines().find(line => /no SMTP_URL/.test(line.msg))
  t.equal(boot?.level, 40, 'a warning at boot')
  t.match(boot?.msg, /mail is off/, 'says mail is off')

  const email = newEmail()
  t.equal((await register(app, email)).statusCode, 201, 'registration answers as usual')
  const known = await forgot(app, email)
  const unknown = await forgot(app, newEmail())
  t.equal(known.statusCode, 202)
  t.equal(known.body, unknown.body, 'the same answer for every address, as with mail')
  await app.tollgate.recovery.settled()

  const dropped = log.lines().filter(line => line.msg === 'mail not sent: mail is off (SMTP_URL is unset)')
  t.same(dropped.map(line => [line.level, (line.mail as { kind: string }).kind]).sort(), [[40, 'reset_password'], [40, 'verify_email']], 'a warning for each dropped mail')
  t.same(Object.keys(dropped[0]?.mail as object).sort(), ['kind', 'userId'], 'which mail and whose, nothing else')
  t.notOk(log.lines().some(line => 'devOutbox' in line), 'no development outbox')
  t.notMatch(log.raw(), /token=/, 'no link in any log line (trace level included)')
  t.notOk(log.raw().includes(email), 'nor the address')
})

t.test('boot warnings: mail in clear text to a relay (SMTP_REQUIRE_TLS=false), links over http:// (APP_URL)', async t => {
  const warnings = async (config: Record<string, string | boolean>) => {
    const log = captureLog()
    await build(t, { config: { LOG_LEVEL: 'warn', ...config }, logStream: log.stream })
    return log.lines().filter(line => line.level === 40).map(line => line.msg)
  }
  const relay = await warnings({ SMTP_URL: 'smtp://relay.internal:25', SMTP_REQUIRE_TLS: false, APP_URL: 'https://app.example.com' })
  t.ok(relay.some(msg => /SMTP_REQUIRE_TLS=false: mails, reset links included, may reach the SMTP relay in clear text/.test(msg)), 'SMTP_REQUIRE_TLS=false is warned about')
  t.notOk(relay.some(msg => /APP_URL/.test(msg)), 'an https:// APP_URL is not')
  const plainHttp = await warnings({ SMTP_URL: 'smtps://mail.example.com', APP_URL: 'http://app.example.com' })
  t.ok(plainHttp.some(msg => /^APP_URL is http:\/\//.test(msg)), 'an http:// APP_URL on another host is warned about')
  t.notOk(plainHttp.some(msg => /SMTP/.test(msg)), 'nothing about smtps://')
  t.notOk((await warnings({ SMTP_URL: 'smtps://mail.example.com', APP_URL: 'http://localhost:5173' })).some(msg => /APP_URL/.test(msg)), 'loopback is fine')
})

t.test('REQUIRE_VERIFIED_EMAIL with DATABASE_URL needs SMTP_URL: without mail nobody could verify', async t => {
  t.match(problemsOf(() => loadConfig({ DATABASE_URL: 'postgres://db/tollgate', REQUIRE_VERIFIED_EMAIL: 'true' })), [/^REQUIRE_VERIFIED_EMAIL: needs SMTP_URL/])
  t.same(problemsOf(() => loadConfig({ DATABASE_URL: 'postgres://db/tollgate', REQUIRE_VERIFIED_EMAIL: 'true', SMTP_URL: 'smtps://mail.example.com' })), [])
  t.same(problemsOf(() => loadConfig({ REQUIRE_VERIFIED_EMAIL: 'true' })), [], 'the embedded default has its outbox')
  t.match(problemsOf(() => configFromOptions({ databaseUrl: 'postgres://db/tollgate', requireVerifiedEmail: true })), [/^requireVerifiedEmail: needs smtpUrl/], 'named as options in plugin mode')
})

t.test('the embedded default (PGlite, in-process store, no SMTP): verification and reset work', async t => {
  const log = captureLog()
  const dataDir = await tempDir(t)
  const app = await build(t, { config: { DATABASE_URL: undefined, REDIS_URL: undefined, DATA_DIR: dataDir, LOG_LEVEL: 'info' }, logStream: log.stream })
  t.equal(app.tollgate.databaseKind, 'pglite')
  const email = newEmail()
  t.equal((await register(app, email)).statusCode, 201)
  await app.tollgate.recovery.settled()
  const verifyLine = outbox(log.lines(), 'verify-email').mail
  if (!verifyLine) throw new Error('no outbox line')
  const token = linkToken((verifyLine.devOutbox as { text: string }).text, 'verify-email')
  t.equal((await app.inject({ method: 'POST', url: '/auth/email/verify', payload: { token } })).statusCode, 204)
  t.equal((await app.inject({ method: 'POST', url: '/auth/email/verify', payload: { token } })).json().code, 'LINK_TOKEN_USED')

  await forgot(app, email)
  await forgot(app, email)
  await app.tollgate.recovery.settled()
  const resetTokens = log.lines()
    .filter(line => line.msg.startsWith('development outbox') && (line.devOutbox as { text: string }).text.includes('/reset-password?'))
    .map(line => linkToken((line.devOutbox as { text: string }).text, 'reset-password'))
  t.equal(resetTokens.length, 2)
  t.equal((await app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token: resetTokens[0], new_password: 'another good passphrase' } })).json().code, 'LINK_TOKEN_SUPERSEDED')
  t.equal((await app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token: resetTokens[1], new_password: 'another good passphrase' } })).statusCode, 204)
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: 'another good passphrase' } })
  t.equal(login.statusCode, 200)
})

t.test('mail settings are validated; a bad SMTP_URL is named, never repeated', async t => {
  const problems = (input: Record<string, string>) => {
    try {
      loadConfig(input)
      return []
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return err.problems
    }
  }
  for (const bad of ['http://mail.example.com', `smtp://user:${SMTP_PASSWORD}@`, `smtp://user:${SMTP_PASSWORD}@mail.example.com/path`, `smtp://user:${SMTP_PASSWORD}@mail.example.com?requireTLS=false`, 'smtp://only-user@mail.example.com']) {
    const found = problems({ SMTP_URL: bad })
    t.equal(found.length, 1, bad.replace(SMTP_PASSWORD, '***'))
    t.match(found[0], /^SMTP_URL: /)
    t.notOk(found.join('').includes(SMTP_PASSWORD), 'the password is not repeated')
  }
  t.same(problems({ SMTP_URL: 'smtps://user:pass@mail.example.com:465' }), [])
  t.match(problems({ MAIL_FROM: 'not an address' }), [/^MAIL_FROM: /])
  t.same(problems({ MAIL_FROM: 'Example <no-reply@example.com>' }), [])
  t.match(problems({ MAIL_FROM: 'Example\r\nBcc: victim@example.com <no-reply@example.com>' }), [/^MAIL_FROM: /], 'no header injection')
  t.match(problems({ APP_URL: 'https://app.example.com/' }), [/^APP_URL: /], 'no trailing slash')
  t.match(problems({ APP_URL: 'javascript:alert(1)' }), [/^APP_URL: /])
  t.match(problems({ REQUIRE_VERIFIED_EMAIL: 'yes' }), [/^REQUIRE_VERIFIED_EMAIL: /])

  const defaults = loadConfig({})
  t.equal(defaults.SMTP_URL, undefined, 'no SMTP by default: the development outbox')
  t.equal(defaults.APP_URL, 'http://localhost:3000')
  t.equal(defaults.REQUIRE_VERIFIED_EMAIL, false)

  const optionProblems = (options: Parameters<typeof configFromOptions>[0]) => {
    try {
      configFromOptions(options)
      return []
    } catch (err) {
      if (!(err instanceof OptionsError)) throw err
      return err.problems
    }
  }
  t.match(optionProblems({ smtpUrl: 'http://mail.example.com' }), [/^smtpUrl: /])
  t.match(optionProblems({ requireVerifiedEmail: 'true' as unknown as boolean }), [/^requireVerifiedEmail: expected true or false/])
  t.match(optionProblems({ clock: 5 as unknown as () => number }), [/^clock: /])
  t.equal(configFromOptions({ requireVerifiedEmail: true, appUrl: 'https://app.example.com', mailFrom: 'a@example.com', clock: Date.now }).REQUIRE_VERIFIED_EMAIL, true)
})

t.test('SMTP_URL: TLS is required before mail (its links) or credentials leave this machine', async t => {
  t.match(parseSmtpUrl('smtp://user:pass@mail.example.com'), { host: 'mail.example.com', port: 587, secure: false, requireTls: true, auth: { user: 'user', pass: 'pass' } })
  t.match(parseSmtpUrl('smtps://user:pass@mail.example.com'), { port: 465, secure: true, requireTls: false })
  t.match(parseSmtpUrl('smtp://user:pass@127.0.0.1:1025'), { requireTls: false }, 'loopback')
  t.match(parseSmtpUrl('smtp://localhost:1025'), { requireTls: false }, 'loopback, no credentials')
  t.match(parseSmtpUrl('smtp://relay.internal:25'), { requireTls: true, auth: undefined }, 'no credentials: STARTTLS is still required (the links are secrets)')
  t.match(parseSmtpUrl('smtp://relay.internal:25', { allowPlaintext: true }), { requireTls: false }, 'unless explicitly allowed (SMTP_REQUIRE_TLS=false)')
  t.match(parseSmtpUrl('smtp://user:pass@relay.internal:25', { allowPlaintext: true }), { requireTls: true }, 'never for credentials')
  t.equal(loadConfig({}).SMTP_REQUIRE_TLS, true, 'required by default')
  t.equal(loadConfig({ SMTP_URL: 'smtp://relay.internal:25', SMTP_REQUIRE_TLS: 'false' }).SMTP_REQUIRE_TLS, false)
  const refused = problemsOf(() => loadConfig({ SMTP_URL: `smtp://user:${SMTP_PASSWORD}@relay.internal:25`, SMTP_REQUIRE_TLS: 'false' }))
  t.match(refused, [/^SMTP_REQUIRE_TLS: false is only for a relay without credentials/])
  t.notOk(refused.join('').includes(SMTP_PASSWORD), 'the password is not repeated')
  t.match(parseSmtpUrl('smtp://a%40b.example:p%3Ass@mail.example.com'), { auth: { user: 'a@b.example', pass: 'p:ss' } }, 'percent-decoded')
})

t.test('with requireTls, a server that offers no STARTTLS gets no mail (nor its link)', async t => {
  const smtp = await startSmtpServer(t)
  const settings = parseSmtpUrl(smtp.url)
  if (!settings) throw new Error('no settings')
  const { lines, log } = memoryLog()
  // What parseSmtpUrl sets for any host but loopback: the test server is on loopback.
  const mailer = createMailer({ smtp: { ...settings, requireTls: true }, from: 'test@example.com', log, retryDelaysMs: [] })
  t.teardown(() => mailer.close())
  mailer.send({ to: 'someone@example.com', subject: 'Hello', text: 'Secret link: https://app/x?token=abc' }, { kind: 'test', userId: 'u1' })
  await mailer.settled()
  t.same(smtp.received, [], 'nothing delivered in clear text')
  t.same(lines.map(line => [line.level, line.message]), [['error', 'mail not sent: giving up']])
})

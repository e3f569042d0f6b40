import { randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { assertErrorShape } from '../fixtures.js'
import { build, createTestDatabase, login } from '../helper.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const PASSWORD = 'correct horse battery staple'

type App = Awaited<ReturnType<typeof build>>
const register = (app: App, payload?: unknown) =>
  app.inject({ method: 'POST', url: '/auth/register', ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) })

/** The app on a database this test can also read, to check what is stored. */
async function buildWithDatabase (t: Parameters<typeof build>[0]) {
  const databaseUrl = await createTestDatabase(t)
  const app = await build(t, { config: { DATABASE_URL: databaseUrl } })
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  return { app, db }
}

t.test('POST /auth/register creates a user and answers 201 with the user only', async t => {
  const { app, db } = await buildWithDatabase(t)
  const email = `new-${randomUUID()}@example.com`
  const res = await register(app, { email, password: PASSWORD, name: 'Ada Lovelace' })
  t.equal(res.statusCode, 201)
  t.match(res.headers['content-type'], /^application\/json/)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['created_at', 'email', 'email_verified', 'id', 'name'])
  t.match(body.id, UUID)
  t.equal(body.email_verified, false, 'a new address is not verified yet')
  t.equal(body.email, email)
  t.equal(body.name, 'Ada Lovelace')
  t.equal(new Date(body.created_at).toISOString(), body.created_at, 'created_at is an ISO 8601 date-time')
  t.ok(Math.abs(Date.parse(body.created_at) - Date.now()) < 60_000, 'created now')

  const { rows } = await db.query('select password_hash from users where id = $1', [body.id])
  const hash = rows[0]?.password_hash as string
  // The PHC string carries the parameters: OWASP's argon2id minimum (SECURITY.md).
  t.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'the password is stored as an argon2id hash, m=19 MiB, t=2, p=1')
  t.notOk(res.body.includes(hash), 'the hash is not in the body')
  t.notMatch(res.body, /argon2|password|hash/i, 'nothing about the password in the body')
  t.notOk(res.body.includes(PASSWORD), 'nor the password')

  t.test('the new user can log in', async t => {
    const tokens = await login(app, email, PASSWORD)
    t.equal(tokens.token_type, 'Bearer')
  })
})

t.test('POST /auth/register without a name gives name null', async t => {
  const app = await build(t)
  const res = await register(app, { email: `noname-${randomUUID()}@example.com`, password: PASSWORD })
  t.equal(res.statusCode, 201)
  t.equal(res.json().name, null)
})

t.test('passwords of 8 and 128 characters are accepted', async t => {
  const app = await build(t)
  for (const password of ['a'.repeat(8), 'b'.repeat(128)]) {
    const email = `len${password.length}-${randomUUID()}@example.com`
    const res = await register(app, { email, password })
    t.equal(res.statusCode, 201, `${password.length} characters`)
    t.equal((await login(app, email, password)).token_type, 'Bearer')
  }
})

t.test('emails are stored lower-case, and unique whatever their case', async t => {
  const { app, db } = await buildWithDatabase(t)
  const local = `Mixed.Case-${randomUUID()}`
  const res = await register(app, { email: `${local}@Example.COM`, password: PASSWORD })
  t.equal(res.statusCode, 201)
  const lower = `${local}@example.com`.toLowerCase()
  t.equal(res.json().email, lower, 'answered lower-case')
  const { rows } = await db.query('select email from users')
  t.same(rows.map(r => r.email), [lower], 'stored lower-case')

  t.test('409 for the same email in another case', async t => {
    for (const email of [lower, lower.toUpperCase(), `${local}@example.com`]) {
      const again = await register(app, { email, password: 'another password' })
      assertErrorShape(t, again, 409)
      t.same(again.json(), { statusCode: 409, code: 'EMAIL_TAKEN', error: 'Conflict', message: 'An account with this email already exists' })
    }
    const { rows } = await db.query('select count(*)::int as n from users')
    t.equal(rows[0].n, 1, 'still one user')
  })

  t.test('an email with surrounding spaces is refused, as the schema says, and never stored', async t => {
    const padded = `  Padded-${randomUUID()}@Example.com  `
    const res = await register(app, { email: padded, password: PASSWORD })
    assertErrorShape(t, res, 400)
    t.match(res.json().message, /body\/email must match format "email"/)
    const { rows } = await db.query('select email from users where email <> btrim(email) or email <> lower(email)')
    t.same(rows, [])
  })
})

t.test('POST /auth/register rejects each invalid field with a 400 in the error shape', async t => {
  const { app, db } = await buildWithDatabase(t)
  const email = () => `invalid-${randomUUID()}@example.com`
  const cases: Array<[string, unknown]> = [
    ['a bad email', { email: 'not-an-email', password: PASSWORD }],
    ['an email without a domain', { email: 'user@', password: PASSWORD }],
    ['a password of 7 characters', { email: email(), password: 'a'.repeat(7) }],
    ['a password of 129 characters', { email: email(), password: 'a'.repeat(129) }],
    ['an empty name', { email: email(), password: PASSWORD, name: '' }],
    ['an unknown extra field', { email: email(), password: PASSWORD, roles: ['admin'] }],
    ['an operator object as email', { email: { $ne: null }, password: PASSWORD }],
    ['a number instead of a string (password)', { email: email(), password: 12345678 }],
    ['a number instead of a string (email)', { email: 12345678, password: PASSWORD }],
    ['a number instead of a string (name)', { email: email(), password: PASSWORD, name: 42 }],
    ['null as name', { email: email(), password: PASSWORD, name: null }],
    ['a missing email', { password: PASSWORD }],
    ['a missing password', { email: email() }],
    ['an array body', [{ email: email(), password: PASSWORD }]],
    ['a missing body', undefined]
  ]
  for (const [name, payload] of cases) {
    t.test(`400 for ${name}`, async t => {
      const res = await register(app, payload)
      assertErrorShape(t, res, 400)
      t.equal(res.json().code, 'INVALID_REQUEST')
      t.equal(res.json().error, 'Bad Request')
    })
  }

  t.test('400 for a body that is not JSON', async t => {
    const res = await app.inject({ method: 'POST', url: '/auth/register', headers: { 'content-type': 'application/json' }, payload: '{"email":' })
    assertErrorShape(t, res, 400)
  })

  t.test('415 for a body that is not JSON at all', async t => {
    const res = await app.inject({ method: 'POST', url: '/auth/register', headers: { 'content-type': 'application/xml' }, payload: '<user/>' })
    assertErrorShape(t, res, 415)
  })

  t.test('413 for a body over the limit', async t => {
    const res = await register(app, { email: email(), password: PASSWORD, name: 'x'.repeat(64 * 1024) })
    assertErrorShape(t, res, 413)
  })

  t.test('nothing was stored', async t => {
    const { rows } = await db.query('select count(*)::int as n from users')
    t.equal(rows[0].n, 0)
  })
})

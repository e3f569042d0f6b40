import t from 'tap'
import { logSafeError } from '../src/log-safe-error.js'

t.test('a failed query is logged as name, code and the database\'s own words: no SQL, no values', async t => {
  // As knex and MikroORM shape it: the statement with its values inlined, then the message, then `detail`.
  const driverError = Object.assign(new Error(
    "update users set password_hash = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', email = 'ada@example.com' where id = 'u1' - duplicate key value violates unique constraint \"users_email_unique\"\n - detail: Key (email)=(ada@example.com) already exists."),
  { name: 'UniqueConstraintViolationException', code: '23505', detail: 'Key (email)=(ada@example.com) already exists.', query: 'update users set …' })
  const cleaned = logSafeError(driverError)
  t.same({ name: cleaned.name, code: cleaned.code, message: cleaned.message }, {
    name: 'UniqueConstraintViolationException',
    code: '23505',
    message: 'duplicate key value violates unique constraint "users_email_unique"'
  })
  const text = JSON.stringify(cleaned)
  t.notMatch(text, /argon2|ada@example\.com|update users/, 'no value and no statement, the stack included')
  t.match(cleaned.stack, /^\s+at /, 'the frames are kept')
})

t.test('causes are cleaned too; plain values and errors without SQL pass as they are', async t => {
  const wrapped = Object.assign(new Error('postgres unavailable'), { cause: Object.assign(new Error("select * from users where email = 'ada@example.com' - Connection terminated unexpectedly"), { code: 'ECONNRESET' }) })
  t.match(logSafeError(wrapped), { message: 'postgres unavailable', cause: { code: 'ECONNRESET', message: 'Connection terminated unexpectedly' } })
  t.notMatch(JSON.stringify(logSafeError(wrapped)), /ada@example\.com/)
  t.same(logSafeError('boom'), { message: 'boom' })
  t.same(logSafeError(null), { message: 'null' })
})

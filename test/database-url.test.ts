// DATABASE_URL and REDIS_URL as an operator writes them (operations review): a URL that does not
// parse is refused by name, never repeated (it holds a password); DATABASE_URL's sslmode is
// honoured, since MikroORM keeps none of the URL's parameters, and any other parameter is refused
// rather than dropped.
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { openDatabase } from '../src/database.js'
import { configError } from './config-support.js'
import { createTestDatabase } from './helper.js'

const PASSWORD = 'Pw#LeakCheck42'
const NOT_A_URL = 'not a valid URL (percent-encode reserved characters such as # / ? @ : in the user name and password)'

t.test('a URL that does not parse is named, and its password is not repeated', async t => {
  for (const [name, value] of [
    ['DATABASE_URL', `postgres://app:${PASSWORD}@127.0.0.1:5432/x`],
    ['DATABASE_URL', 'postgres://app:secret-LeakCheck42@127.0.0.1:99999/x'],
    ['REDIS_URL', `redis://:${PASSWORD}@127.0.0.1:6379`]
  ] as const) {
    const error = configError(t, { [name]: value })
    t.match(error?.message, `${name}: ${NOT_A_URL}`, `${name}: named, with what to do`)
    t.notOk(error?.message.includes('LeakCheck42'), `${name}: the password is not in the message`)
  }
})

t.test('DATABASE_URL: sslmode takes libpq\'s values Tollgate honours; other parameters are refused', async t => {
  for (const mode of ['disable', 'require', 'verify-ca', 'verify-full']) {
    t.doesNotThrow(() => loadConfig({ DATABASE_URL: `postgres://app@db.example/x?sslmode=${mode}` }), `sslmode=${mode}`)
  }
  t.match(configError(t, { DATABASE_URL: 'postgres://app@db.example/x?sslmode=prefer' })?.message, 'DATABASE_URL: sslmode must be one of disable, require, verify-ca, verify-full')
  t.match(configError(t, { DATABASE_URL: 'postgres://app@db.example/x?application_name=a&ssl=true' })?.message, 'DATABASE_URL: parameters other than sslmode and sslrootcert are not supported (2 found)')
})

t.test('DATABASE_URL\'s sslmode=require is honoured: against a server without TLS, no connection', async t => {
  const url = await createTestDatabase(t)
  const query = async (databaseUrl: string) => {
    const database = await openDatabase({ url: databaseUrl })
    try {
      return await database.orm.em.getConnection().execute('select 1 as one')
    } finally {
      await database.close()
    }
  }
  t.same(await query(`${url}?sslmode=disable`), [{ one: 1 }], 'sslmode=disable: a connection')
  // This machine's PostgreSQL has no TLS (as psql "sslmode=require" shows): a connection that
  // asks for it must fail, not quietly go in clear text.
  await t.rejects(query(`${url}?sslmode=require`), /SSL/)
})

t.test('a DATABASE_URL naming a database that does not exist is an error, never a new empty database', async t => {
  const url = await createTestDatabase(t)
  const missing = `${url}_missing`
  const database = await openDatabase({ url: missing })
  t.teardown(() => database.close())
  await t.rejects(database.migrate(), /does not exist/)
  const admin = await openDatabase({ url })
  t.teardown(() => admin.close())
  const found = await admin.orm.em.getConnection().execute('select 1 from pg_database where datname = ?', [missing.slice(missing.lastIndexOf('/') + 1)])
  t.same(found, [], 'and it was not created')
})

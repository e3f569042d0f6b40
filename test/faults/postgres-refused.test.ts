import { randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { INTERNAL_ERROR_BODY } from '../fixtures.js'
import { POSTGRES_URL, bearer, build, claimsOf, createTestDatabase, login, redisClient, refresh, registerAndLogin } from '../helper.js'
import { eventually, expectUnavailableFast } from './support.js'

// Issue 12: PostgreSQL up but refusing connections to the database (failover, maintenance, too many
// clients). Every request that needs it answers the masked 503 with Retry-After, never 500, and
// works again once the database is open, without rebuilding the app. A real query error stays a
// query error (409, 500). Only this test's own database and role are ever altered.

/** Runs one statement as the superuser, on the `postgres` database or on `database`. */
async function admin (sql: string, database = 'postgres') {
  const client = new pg.Client({ connectionString: `${POSTGRES_URL}/${database}` })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

const WAYS = [
  { way: 'ALLOW_CONNECTIONS false', close: 'allow_connections false', open: 'allow_connections true' },
  // A superuser ignores CONNECTION LIMIT, so the app connects as a role of its own.
  { way: 'CONNECTION LIMIT 0', close: 'connection limit 0', open: 'connection limit -1' }
]

for (const { way, close, open } of WAYS) {
  t.test(`database closed to connections (${way}) and its backends terminated: 503, then recovery`, async t => {
    // Teardowns run last-registered first: reopen the database, the helper drops it, then the role.
    const role = `tollgate_role_${randomBytes(6).toString('hex')}`
    t.teardown(() => admin(`drop role if exists "${role}"`))
    const direct = new URL(await createTestDatabase(t))
    const database = direct.pathname.slice(1)
    await admin(`create role "${role}" login`)
    // The owner may create the tables in `public` (PostgreSQL 15 lets only the owner).
    await admin(`alter database "${database}" owner to "${role}"`)
    let closed = false
    const reopen = async () => {
      if (closed) await admin(`alter database "${database}" ${open}`)
      closed = false
    }
    t.teardown(reopen)

    direct.username = role
    const app = await build(t, { config: { DATABASE_URL: direct.toString() } })
    const { userId, email, password, tokens } = await registerAndLogin(app)
    // A session stored before sessions kept the user's roles: only its refresh reads the database.
    const old = await login(app, email, password)
    const oldSession = `${app.tollgate.config.REDIS_KEY_PREFIX}:{${userId}}:s:${claimsOf(old.refresh_token).sid as string}`
    t.equal(await (await redisClient(t)).hdel(oldSession, 'roles'), 1, 'a session hash as an earlier version wrote it')
    const requests = {
      login: () => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } }),
      register: () => app.inject({ method: 'POST', url: '/auth/register', payload: { email: `new-${randomUUID()}@example.com`, password } }),
      me: () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) }),
      refresh: () => refresh(app, old.refresh_token),
      ready: () => app.inject({ method: 'GET', url: '/health/ready' })
    }

    closed = true
    await admin(`alter database "${database}" ${close}`)
    await admin(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${database}' and pid <> pg_backend_pid()`)

    // Twice each: the first request may meet a terminated pooled connection, the next a refused connect.
    for (let round = 1; round <= 2; round++) {
      for (const [name, send] of Object.entries(requests)) {
        if (name === 'ready') continue
        await expectUnavailableFast(t, `${name} (${round})`, send)
      }
      // Readiness has its own body, which says which check is down.
      const ready = await requests.ready()
      t.equal(ready.statusCode, 503, `ready (${round}): 503`)
      t.match(ready.headers['retry-after'], /^[1-9][0-9]*$/, `ready (${round}): Retry-After in seconds`)
      t.equal(ready.json().checks.database, 'down', `ready (${round}): the database is down`)
    }
    // Any other refresh reads no database: it works through the outage.
    const refreshed = await refresh(app, tokens.refresh_token)
    t.equal(refreshed.statusCode, 200, 'a session\'s refresh works while the database is closed')
    t.not(refreshed.json().refresh_token, tokens.refresh_token)

    await reopen()
    await eventually('login', 200, requests.login)
    t.equal((await requests.me()).statusCode, 200, 'me works again')
    // The refresh token was not spent by the failed refreshes.
    t.equal((await requests.refresh()).statusCode, 200, 'refresh works again')
    t.equal((await requests.register()).statusCode, 201, 'register works again')
    t.equal((await requests.ready()).statusCode, 200, 'ready again')

    // A query error is not an outage: a taken email stays 409, a missing table (a bug) stays 500.
    const taken = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password } })
    t.equal(taken.statusCode, 409, 'a taken email is still 409')
    t.equal(taken.json().code, 'EMAIL_TAKEN')
    await admin('alter table users rename to users_away', database)
    try {
      const missing = await requests.login()
      t.equal(missing.statusCode, 500, 'a missing table is a 500, not a 503')
      t.strictSame(missing.json(), INTERNAL_ERROR_BODY, 'masked: the query and the table stay in the log')
    } finally {
      await admin('alter table users_away rename to users', database)
    }
  })
}

// A login races a password reset or change (review of issue 14): the login read the old password
// hash and is checking it while the change commits, and the change ends the user's sessions. The
// session the login starts must not survive: it was authenticated with a password that no longer is.
// Deterministic: a transaction of the test's own holds the user's row, as a reset in progress does.
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import t from 'tap'
import { build, createTestDatabase } from '../helper.js'

const PASSWORD = 'correct horse battery staple'

for (const outcome of ['commit', 'rollback'] as const) {
  t.test(`a login while a password change is in its transaction, which then does a ${outcome}`, async t => {
    const databaseUrl = await createTestDatabase(t)
    const app = await build(t, { config: { DATABASE_URL: databaseUrl } })
    const email = `race-${outcome}@example.com`
    const registered = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })
    t.equal(registered.statusCode, 201)
    const userId = registered.json().id as string

    const change = new pg.Client({ connectionString: databaseUrl })
    await change.connect()
    t.teardown(() => change.end())
    await change.query('begin')
    await change.query('update users set password_hash = $1, updated_at = now() where id = $2', ['$argon2id$v=19$m=19456,t=2,p=1$changed$changed', userId])

    const login = app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } })
    // The login has checked the old password and started its session; it now waits for the row.
    const watcher = new pg.Client({ connectionString: databaseUrl })
    await watcher.connect()
    t.teardown(() => watcher.end())
    for (let i = 0; ; i++) {
      const waiting = await watcher.query("select 1 from pg_stat_activity where wait_event_type = 'Lock' and query ilike '%for share%'")
      if (waiting.rowCount) break
      if (i === 400) throw new Error('the login never waited for the row')
      await sleep(25)
    }
    // A reset ends the user's sessions before it commits; the login's session was created after that.
    await change.query(outcome)
    const answer = await login
    const live = await app.tollgate.tokenStore.liveRefreshJtis(userId)
    if (outcome === 'commit') {
      t.equal(answer.statusCode, 401, 'the password changed while it was checked: 401')
      t.same(live, [], 'and no session is left')
    } else {
      t.equal(answer.statusCode, 200, 'the change was rolled back: the login stands')
      t.equal(live.length, 1, 'one session')
    }
  })
}

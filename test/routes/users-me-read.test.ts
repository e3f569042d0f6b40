// GET /users/me reads the user by a named prepared statement on each pooled PostgreSQL connection
// (issue 13). A prepared statement outlives the moment it was planned for: it must stay correct when
// another instance migrates the table under a live pool, and when the row goes away.
import pg from 'pg'
import t from 'tap'
import { bearer, build, createTestDatabase, registerAndLogin } from '../helper.js'

t.test('GET /users/me stays correct across a schema change and a removed row', async t => {
  const databaseUrl = await createTestDatabase(t)
  const app = await build(t, { config: { DATABASE_URL: databaseUrl } })
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  const { userId, email, tokens } = await registerAndLogin(app)
  const me = () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })

  // Enough requests at once that several pooled connections prepare the statement.
  const first = await Promise.all(Array.from({ length: 20 }, me))
  t.same([...new Set(first.map(res => res.statusCode))], [200])
  t.equal(first[0]?.json().email, email)

  // What another instance's migration may do while this one runs: a new column, a changed name.
  await db.query('alter table users add column nickname text')
  await db.query('update users set name = $1 where id = $2', ['Renamed', userId])
  const after = await Promise.all(Array.from({ length: 20 }, me))
  t.same([...new Set(after.map(res => res.statusCode))], [200], 'still 200 on every connection')
  t.same([...new Set(after.map(res => res.json().name))], ['Renamed'], 'and reads the current row')

  await db.query('delete from users where id = $1', [userId])
  const gone = await me()
  t.equal(gone.statusCode, 401, 'a removed user: 401')
  t.equal(gone.json().code, 'INVALID_TOKEN')
})

// Reads by id of one event-loop turn share one query (src/batched-reads.ts): under load, every
// request in a batch must still get its own user, and a missing one must not fail the others.
t.test('GET /users/me for many users at once: each gets its own row', async t => {
  const databaseUrl = await createTestDatabase(t)
  const app = await build(t, { config: { DATABASE_URL: databaseUrl } })
  const users = await Promise.all(Array.from({ length: 30 }, () => registerAndLogin(app)))
  const gone = users[7] as typeof users[number]
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  await db.query('delete from users where id = $1', [gone.userId])

  // Each user asks three times, interleaved, so batches hold repeated and distinct ids.
  const asked = [...users, ...users, ...users]
  const answers = await Promise.all(asked.map(u => app.inject({ method: 'GET', url: '/users/me', headers: bearer(u.tokens.access_token) })))
  answers.forEach((res, i) => {
    const user = asked[i] as typeof users[number]
    if (user === gone) {
      t.equal(res.statusCode, 401, 'the removed user: 401')
      return
    }
    t.equal(res.statusCode, 200)
    t.same([res.json().id, res.json().email], [user.userId, user.email], 'its own user')
  })
})

// A password change or an account deletion whose password check passed races a password reset
// (security review, 2026-12-01): the reset commits while the change or deletion is still on its
// way, having ended every session and replaced the password that was checked. The reset must win:
// its owner keeps the new password and the account, and the late request changes nothing.
// Deterministic: a transaction of the test's own holds the user's row, as a reset in progress does.
import { hash } from '@node-rs/argon2'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import t from 'tap'
import { ARGON2_OPTIONS } from '../../src/password.js'
import { bearer, build, createTestDatabase, login, registerAndLogin, type TestContext } from '../helper.js'

const RESET_PASSWORD = 'the owner recovered the account'
const INVALID_CREDENTIALS = { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'The password is incorrect' }

const requests = {
  'a password change': (accessToken: string, password: string) => ({
    method: 'POST' as const, url: '/auth/password', headers: bearer(accessToken), payload: { current_password: password, new_password: 'the late change' }
  }),
  'an account deletion': (accessToken: string, password: string) => ({
    method: 'DELETE' as const, url: '/users/me', headers: bearer(accessToken), payload: { password }
  })
}

/** Begins a transaction that stores the reset's hash and holds the user's row until it ends. */
async function resetInProgress (t: TestContext, databaseUrl: string, userId: string) {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  t.teardown(() => client.end())
  await client.query('begin')
  await client.query('update users set password_hash = $1, updated_at = now() where id = $2', [await hash(RESET_PASSWORD, ARGON2_OPTIONS), userId])
  return client
}

async function untilWaitingForTheRow (databaseUrl: string) {
  const watcher = new pg.Client({ connectionString: databaseUrl })
  await watcher.connect()
  try {
    for (let i = 0; ; i++) {
      const waiting = await watcher.query("select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")
      if (waiting.rowCount) return
      if (i === 400) throw new Error('the request never waited for the row')
      await sleep(25)
    }
  } finally {
    await watcher.end()
  }
}

for (const [name, request] of Object.entries(requests)) {
  t.test(`${name} checked before a reset commits is refused, and changes nothing`, async t => {
    const databaseUrl = await createTestDatabase(t)
    const app = await build(t, { config: { DATABASE_URL: databaseUrl } })
    const { userId, email, password, tokens } = await registerAndLogin(app)
    await login(app, email, password)

    const reset = await resetInProgress(t, databaseUrl, userId)
    const late = app.inject(request(tokens.access_token, password))
    await untilWaitingForTheRow(databaseUrl)
    await reset.query('commit')

    const answer = await late
    t.equal(answer.statusCode, 401, 'the password it checked is no longer the account\'s: 401')
    t.strictSame(answer.json(), INVALID_CREDENTIALS)
    t.equal((await app.tollgate.tokenStore.liveRefreshJtis(userId)).length, 2, 'no session was ended by it')
    t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: RESET_PASSWORD } })).statusCode, 200, 'the reset\'s password logs in: the account is there')
    t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: 'the late change' } })).statusCode, 401, 'the late change\'s password does not')
  })

  t.test(`${name} with no reset in between still works`, async t => {
    const app = await build(t)
    const { userId, password, tokens } = await registerAndLogin(app)
    const answer = await app.inject(request(tokens.access_token, password))
    t.equal(answer.statusCode, 204)
    t.equal((await app.tollgate.tokenStore.liveRefreshJtis(userId)).length, name === 'a password change' ? 1 : 0)
  })
}

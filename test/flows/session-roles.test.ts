// Issue 13: a refresh reads no database. The session keeps the user's roles from login, and a
// deleted user has no session left to refresh: deleting the account ends every session and closes
// the account to new ones, also those of a login that read the user before the deletion.
import { randomBytes } from 'node:crypto'
import Fastify, { type LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import t from 'tap'
import tollgate from '../../plugins/tollgate.js'
import type { ConfigInput } from '../../src/config.js'
import type { TokenStore } from '../../src/token-store/index.js'
import { createRedisTokenStore } from '../../src/token-store/redis.js'
import { bearer, build, claimsOf, createTestDatabase, login, pluginOptions, redisClient, registerAndLogin, storeRedis, type TestContext } from '../helper.js'
import {
  expectAccessRevoked, expectAccessWorks, expectAllowlist, expectNoContent, expectRefreshRejected, expectRefreshWorks, userKey
} from './support.js'

/** The app on a database this test can also reach directly, with its Redis prefix known. */
async function buildWithDatabase (t: TestContext, config: ConfigInput = {}) {
  const databaseUrl = await createTestDatabase(t)
  const prefix = `t-${randomBytes(6).toString('hex')}`
  const app = await build(t, { config: { DATABASE_URL: databaseUrl, REDIS_KEY_PREFIX: prefix, ...config } })
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  return { app, db, store: { redis: await redisClient(t), prefix } }
}

const rolesOf = (accessToken: string) => claimsOf(accessToken).roles

t.test('the roles of a login stay with its session; a new login reads them again', async t => {
  const { app, db, store } = await buildWithDatabase(t)
  const { userId, email, password } = await registerAndLogin(app)
  await db.query('update users set roles = $1 where id = $2', [['admin', 'billing'], userId])
  const first = await login(app, email, password)
  t.same(rolesOf(first.access_token), ['admin', 'billing'], 'login: the roles of the user')

  await db.query('update users set roles = $1 where id = $2', [['reader'], userId])
  const refreshed = await expectRefreshWorks(t, app, first.refresh_token, 'refresh after a role change in the database')
  t.same(rolesOf(refreshed.access_token), ['admin', 'billing'], 'refresh: the roles the session started with')
  t.equal(await store.redis.hget(userKey(store, userId, `s:${claimsOf(first.refresh_token).sid as string}`), 'roles'), '["admin","billing"]', 'kept in the session hash')

  // Ending the sessions applies a role change: the next login reads the user again.
  expectNoContent(t, await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(refreshed.access_token) }), 'logout-all')
  const again = await login(app, email, password)
  t.same(rolesOf(again.access_token), ['reader'], 'the new login has the new roles')
  t.same(rolesOf((await expectRefreshWorks(t, app, again.refresh_token, 'its refresh')).access_token), ['reader'])
})

t.test('a session stored without roles (by an earlier version) reads them from the database once', async t => {
  // Strict rotation, so the spent token is reuse at once.
  const { app, db, store } = await buildWithDatabase(t, { REFRESH_REUSE_INTERVAL: 0 })
  const { userId, email, password, tokens } = await registerAndLogin(app)
  await db.query('update users set roles = $1 where id = $2', [['admin'], userId])
  const sessionKey = userKey(store, userId, `s:${claimsOf(tokens.refresh_token).sid as string}`)
  t.equal(await store.redis.hdel(sessionKey, 'roles'), 1, 'the session hash as an earlier version wrote it')

  const refreshed = await expectRefreshWorks(t, app, tokens.refresh_token, 'refresh of the old session')
  t.same(rolesOf(refreshed.access_token), ['admin'], 'the roles come from the database')
  t.equal(await store.redis.hget(sessionKey, 'roles'), '["admin"]', 'and are kept with the session from now on')
  await expectAllowlist(t, store, userId, [refreshed.refresh_token], 'one live refresh token')
  await expectRefreshRejected(t, app, tokens.refresh_token, 'the spent token is still reuse')
  await expectAllowlist(t, store, userId, [], 'reuse ended the session')

  // Such a session of a user removed from the database without deleteAccount (by hand) ends at
  // its next refresh, as every session did before roles were kept.
  const other = await login(app, email, password)
  await store.redis.hdel(userKey(store, userId, `s:${claimsOf(other.refresh_token).sid as string}`), 'roles')
  await db.query('delete from users where id = $1', [userId])
  await expectRefreshRejected(t, app, other.refresh_token, 'the user is gone')
  await expectAllowlist(t, store, userId, [], 'and the session with it')
})

t.test('DELETE /users/me: no refresh works afterwards, whatever the session', async t => {
  const { app, store } = await buildWithDatabase(t)
  const { userId, email, password, tokens: a } = await registerAndLogin(app)
  const b = await login(app, email, password)
  const old = await login(app, email, password)
  await store.redis.hdel(userKey(store, userId, `s:${claimsOf(old.refresh_token).sid as string}`), 'roles')

  expectNoContent(t, await app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(a.access_token), payload: { password } }), 'delete')
  for (const [name, tokens] of [['the deleting session', a], ['another session', b], ['a session without roles', old]] as const) {
    await expectRefreshRejected(t, app, tokens.refresh_token, `${name}: refresh`)
    await expectAccessRevoked(t, app, tokens.access_token, `${name}: access`)
  }
  t.equal(await store.redis.exists(userKey(store, userId, 'closed')), 1, 'the account is closed to new sessions')
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })).statusCode, 401, 'login: 401')
})

/**
 * The Redis store, whose createSession can be held until the test lets it go (and tells when one
 * is done), and whose endSessions can run a step right after its first call: a login and a
 * deletion interleaved.
 */
async function interleavedStore (t: TestContext) {
  const { redis, prefix } = await storeRedis(t)
  const inner = createRedisTokenStore({ redis, prefix, idleTtl: 3_600_000, reuseInterval: 0, absoluteTtl: 86_400_000 })
  const control = {
    holdCreate: null as Promise<void> | null,
    createReached: () => {},
    createDone: () => {},
    afterFirstEndSessions: null as (() => Promise<void>) | null
  }
  const store: TokenStore = {
    ...inner,
    async createSession (session) {
      if (control.holdCreate) {
        control.createReached()
        await control.holdCreate
      }
      const created = await inner.createSession(session)
      control.createDone()
      return created
    },
    async endSessions (end) {
      await inner.endSessions(end)
      const step = control.afterFirstEndSessions
      control.afterFirstEndSessions = null
      await step?.()
    }
  }
  return { store, control }
}

async function hostWith (t: TestContext, tokenStore: TokenStore) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tollgate, await pluginOptions(t, { tokenStore }))
  await app.ready()
  return app
}

t.test('a login that read the user before the deletion finishes after it: no session', async t => {
  const { store, control } = await interleavedStore(t)
  const app = await hostWith(t, store)
  const { userId, email, password, tokens } = await registerAndLogin(app)

  let release = () => {}
  control.holdCreate = new Promise<void>(resolve => { release = resolve })
  const reached = new Promise<void>(resolve => { control.createReached = resolve })
  // The password is checked, then the session waits.
  const pending = app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
  await reached
  control.holdCreate = null
  expectNoContent(t, await app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(tokens.access_token), payload: { password } }), 'delete')
  release()

  const late = await pending
  t.equal(late.statusCode, 401, 'the late login fails')
  t.same(late.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Invalid email or password' })
  t.same(await store.liveRefreshJtis(userId), [], 'no refresh token is live')
  t.same(await store.listSessions(userId, Date.now()), [], 'no session')
})

t.test('a login whose session starts inside the deletion\'s transaction, after its sessions ended: ended', async t => {
  const { store, control } = await interleavedStore(t)
  const app = await hostWith(t, store)
  const { userId, email, password, tokens } = await registerAndLogin(app)

  let lateLogin: Promise<LightMyRequestResponse> | undefined
  control.afterFirstEndSessions = async () => {
    // The user's row is deleted but not committed: the login still finds the user, and starts its
    // session; its re-read of the hash then waits for the deletion's outcome.
    const created = new Promise<void>(resolve => { control.createDone = resolve })
    lateLogin = app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
    await created
  }
  expectNoContent(t, await app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(tokens.access_token), payload: { password } }), 'delete')
  const late = await lateLogin
  t.equal(late?.statusCode, 401, 'the late login fails: the user is gone')
  t.same(late?.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Invalid email or password' })
  t.same(await store.liveRefreshJtis(userId), [], 'no refresh token is live')
  t.same(await store.listSessions(userId, Date.now()), [], 'no session')
})

t.test('a stranger is untouched by a deletion', async t => {
  const { app } = await buildWithDatabase(t)
  const doomed = await registerAndLogin(app)
  const stranger = await registerAndLogin(app)
  expectNoContent(t, await app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(doomed.tokens.access_token), payload: { password: doomed.password } }), 'delete')
  const next = await expectRefreshWorks(t, app, stranger.tokens.refresh_token, 'the stranger refreshes')
  await expectAccessWorks(t, app, next.access_token, stranger.userId, 'and is served')
})

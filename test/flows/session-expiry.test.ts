// Session lifetimes at the smallest settings the config allows (60 s): the absolute lifetime that
// rotation never extends, the idle timeout, and the allowlist once expired sessions are pruned.
// This file waits about a minute of wall time; it asserts no timing, only what holds afterwards.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { bearer, claimsOf, login, registerAndLogin } from '../helper.js'
import { buildWithStore, expectAccessRevoked, expectAccessWorks, expectAllowlist, expectRefreshRejected, expectRefreshWorks, sidOf, userKey } from './support.js'

const TTL_SECONDS = 60
const MARGIN_MS = 1500
const LIFETIMES = { access: 30, refresh: TTL_SECONDS }

t.test('expired sessions: refresh is invalid_grant, and the next login prunes their jtis from the allowlist', { timeout: 120_000 }, async t => {
  // absolute = idle = 60 s: a session used until its end expires at its absolute lifetime.
  const absolute = await buildWithStore(t, { REFRESH_TOKEN_TTL: TTL_SECONDS, REFRESH_IDLE_TTL: TTL_SECONDS, ACCESS_TOKEN_TTL: 30 })
  // absolute 120 s, idle 60 s: an unused session idles out first.
  const idle = await buildWithStore(t, { REFRESH_TOKEN_TTL: 2 * TTL_SECONDS, REFRESH_IDLE_TTL: TTL_SECONDS, ACCESS_TOKEN_TTL: 30 })

  const started = Date.now()
  const a = await registerAndLogin(absolute.app)
  const aUsed = await expectRefreshWorks(t, absolute.app, a.tokens.refresh_token, 'absolute: rotation', LIFETIMES)
  const aUnused = await login(absolute.app, a.email, a.password)
  const b = await registerAndLogin(idle.app)
  await expectAllowlist(t, absolute.store, a.userId, [aUsed.refresh_token, aUnused.refresh_token], 'absolute: two sessions')
  await expectAllowlist(t, idle.store, b.userId, [b.tokens.refresh_token], 'idle: one session')
  // An access token verified (and so cached) now, whose session is kept live past the token's end.
  const c = await registerAndLogin(idle.app)
  await expectAccessWorks(t, idle.app, c.tokens.access_token, c.userId, 'verifier: a fresh access token')

  // Halfway: a later session, which is still live at the end (and keeps the user's keys alive).
  await sleep(started + TTL_SECONDS * 500 - Date.now())
  const aLater = await login(absolute.app, a.email, a.password)
  await expectAllowlist(t, absolute.store, a.userId, [aUsed.refresh_token, aUnused.refresh_token, aLater.refresh_token], 'absolute: three sessions')
  const cRotated = await expectRefreshWorks(t, idle.app, c.tokens.refresh_token, 'verifier: the session is used', LIFETIMES)

  await sleep(started + TTL_SECONDS * 1000 + MARGIN_MS - Date.now())

  // The refresh tokens are still within the verifier's 30 s leeway: the store is what rejects them.
  await expectRefreshRejected(t, absolute.app, aUsed.refresh_token, 'absolute: the rotated session after its lifetime')
  await expectRefreshRejected(t, idle.app, b.tokens.refresh_token, 'idle: the session after its idle timeout')
  // 30 s lifetime + 30 s leeway are over (c logged in a little after `started`): the verifier refuses
  // the token it once accepted, while the store would still allow its session.
  await sleep((claimsOf(c.tokens.access_token).exp as number) * 1000 + 30_000 + MARGIN_MS - Date.now())
  await expectAccessRevoked(t, idle.app, c.tokens.access_token, 'verifier: the cached token after exp + leeway')
  await expectAccessWorks(t, idle.app, cRotated.access_token, c.userId, 'verifier: its session is live')

  // A login prunes the user's expired sessions: only live jtis remain.
  const aNext = await login(absolute.app, a.email, a.password)
  await expectAllowlist(t, absolute.store, a.userId, [aLater.refresh_token, aNext.refresh_token], 'absolute: after the next login')
  t.equal(await absolute.store.redis.zcard(userKey(absolute.store, a.userId, 'sessions')), 2, 'absolute: two sessions left')
  const listed = (await absolute.app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(aNext.access_token) })).json() as Array<{ id: string }>
  t.same(listed.map(s => s.id).sort(), [sidOf(aLater.refresh_token), sidOf(aNext.refresh_token)].sort(), 'absolute: only the live sessions are listed')
  await expectRefreshRejected(t, absolute.app, aUnused.refresh_token, 'absolute: the unused session after its lifetime')
  const aLater2 = await expectRefreshWorks(t, absolute.app, aLater.refresh_token, 'absolute: the later session', { access: 30, refresh: [1, TTL_SECONDS / 2] })
  t.ok((claimsOf(aLater2.refresh_token).exp as number) <= (claimsOf(aLater.refresh_token).exp as number), 'rotation never extends the session')
  await expectAllowlist(t, absolute.store, a.userId, [aLater2.refresh_token, aNext.refresh_token], 'absolute: at the end')

  const bNext = await login(idle.app, b.email, b.password)
  await expectAllowlist(t, idle.store, b.userId, [bNext.refresh_token], 'idle: after the next login')
  await expectRefreshWorks(t, idle.app, bNext.refresh_token, 'idle: the new session', LIFETIMES)
})

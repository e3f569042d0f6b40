import { randomUUID } from 'node:crypto'
import type { Test } from 'tap'
import type { TokenStore, TokenStoreOptions } from '../src/token-store.js'

// The same cases for every TokenStore implementation. Times are passed in, so expiry is tested
// by moving `now` rather than by waiting.

export const IDLE = 60_000
export const ABSOLUTE = 10 * IDLE
export const GRACE = 5_000

export type MakeStore = (t: Test, options: TokenStoreOptions & { absoluteTtl: number }) => Promise<TokenStore>

export function tokenStoreContract (tap: Test, name: string, makeStore: MakeStore) {
  const options = (reuseInterval: number) => ({ idleTtl: IDLE, absoluteTtl: ABSOLUTE, reuseInterval })

  async function session (store: TokenStore, now = Date.now(), userId = randomUUID()) {
    const s = { userId, sid: randomUUID(), jti: randomUUID(), now, expiresAt: now + ABSOLUTE, userAgent: 'ua', ip: '127.0.0.1' }
    await store.createSession(s)
    return s
  }
  const rotate = (store: TokenStore, s: { userId: string, sid: string }, jti: string, now: number) =>
    store.rotate({ userId: s.userId, sid: s.sid, jti, nextJti: randomUUID(), now, userAgent: 'ua2', ip: '127.0.0.2' })
  const allowed = (store: TokenStore, s: { userId: string, sid: string }, now: number, jti = randomUUID(), iat = Math.floor(now / 1000)) =>
    store.isAccessAllowed({ userId: s.userId, sid: s.sid, jti, iat, now })

  tap.test(`${name}: a new session is on the allowlist and allows access`, async t => {
    const store = await makeStore(t, options(0))
    const s = await session(store)
    t.same(await store.liveRefreshJtis(s.userId), [s.jti])
    t.equal(await allowed(store, s, s.now), true)
    t.equal(await allowed(store, { ...s, sid: randomUUID() }, s.now), false, 'unknown session')
  })

  tap.test(`${name}: rotation swaps the jti; the spent one is reuse and revokes the session (strict)`, async t => {
    const store = await makeStore(t, options(0))
    const s = await session(store)
    const rotated = await rotate(store, s, s.jti, s.now + 1000)
    t.equal(rotated.outcome, 'rotated')
    if (rotated.outcome !== 'rotated') return
    t.equal(rotated.expiresAt, s.expiresAt, 'the absolute expiry is not extended')
    t.same(await store.liveRefreshJtis(s.userId), [rotated.jti])
    t.same(await rotate(store, s, s.jti, s.now + 1001), { outcome: 'reuse' })
    t.same(await store.liveRefreshJtis(s.userId), [])
    t.same(await rotate(store, s, rotated.jti, s.now + 1002), { outcome: 'unknown' }, 'the successor died with the session')
    t.equal(await allowed(store, s, s.now + 1003), false, 'access tokens of the session stop working')
  })

  tap.test(`${name}: within the reuse interval the previous token gets the same successor`, async t => {
    const store = await makeStore(t, options(GRACE))
    const s = await session(store)
    const first = await rotate(store, s, s.jti, s.now + 10)
    const again = await rotate(store, s, s.jti, s.now + 10 + GRACE - 1)
    t.equal(first.outcome, 'rotated')
    t.equal(again.outcome, 'grace')
    t.equal('jti' in again && again.jti, 'jti' in first && first.jti)
    t.equal((await store.liveRefreshJtis(s.userId)).length, 1)
    t.same(await rotate(store, s, s.jti, s.now + 10 + GRACE), { outcome: 'reuse' }, 'after the interval it is reuse')
    t.same(await store.liveRefreshJtis(s.userId), [])
  })

  tap.test(`${name}: only the immediately previous token gets grace`, async t => {
    const store = await makeStore(t, options(GRACE))
    const s = await session(store)
    const r1 = await rotate(store, s, s.jti, s.now + 1)
    const r2 = await rotate(store, s, 'jti' in r1 ? r1.jti : '', s.now + 2)
    t.equal(r2.outcome, 'rotated')
    t.same(await rotate(store, s, s.jti, s.now + 3), { outcome: 'reuse' })
  })

  tap.test(`${name}: concurrent rotations of one token: exactly one wins (strict)`, async t => {
    const store = await makeStore(t, options(0))
    const s = await session(store)
    const now = s.now + 1
    const results = await Promise.all(Array.from({ length: 20 }, () => rotate(store, s, s.jti, now)))
    t.equal(results.filter(r => r.outcome === 'rotated').length, 1)
    t.equal(results.filter(r => r.outcome === 'rotated' || r.outcome === 'grace').length, 1)
    t.ok((await store.liveRefreshJtis(s.userId)).length <= 1, 'never two live refresh tokens')
  })

  tap.test(`${name}: concurrent rotations within the interval all get one successor`, async t => {
    const store = await makeStore(t, options(GRACE))
    const s = await session(store)
    const results = await Promise.all(Array.from({ length: 20 }, () => rotate(store, s, s.jti, s.now + 1)))
    t.ok(results.every(r => r.outcome === 'rotated' || r.outcome === 'grace'))
    t.equal(new Set(results.map(r => 'jti' in r && r.jti)).size, 1)
    t.equal((await store.liveRefreshJtis(s.userId)).length, 1)
  })

  tap.test(`${name}: idle timeout and absolute lifetime end a session`, async t => {
    const store = await makeStore(t, options(0))
    const s = await session(store)
    t.equal(await allowed(store, s, s.now + IDLE - 1), true)
    t.equal(await allowed(store, s, s.now + IDLE), false, 'idle: access refused')
    t.same(await rotate(store, s, s.jti, s.now + IDLE), { outcome: 'expired' })
    t.same(await store.liveRefreshJtis(s.userId), [], 'the expired jti left the allowlist')

    // Rotating every half idle period keeps a session alive, but never past its absolute expiry.
    const u = await session(store)
    let jti: string = u.jti
    let now = u.now
    let last: Awaited<ReturnType<typeof rotate>> = { outcome: 'unknown' }
    for (let i = 0; i < 30 && now < u.expiresAt + IDLE; i++) {
      now += IDLE / 2
      last = await rotate(store, u, jti, now)
      if (last.outcome !== 'rotated') break
      jti = last.jti
    }
    t.equal(last.outcome, 'expired')
    t.ok(now >= u.expiresAt, 'ended at the absolute expiry, not before')
    t.same(await store.liveRefreshJtis(u.userId), [])
  })

  tap.test(`${name}: expired sessions are pruned from lists and the allowlist`, async t => {
    const store = await makeStore(t, options(0))
    const s = await session(store)
    const later = s.now + IDLE + 1
    const fresh = await session(store, later, s.userId)
    t.same((await store.listSessions(s.userId, later)).map(x => x.id), [fresh.sid])
    t.same(await store.liveRefreshJtis(s.userId), [fresh.jti])
  })

  tap.test(`${name}: endSession ends one session and revokes the asking access token`, async t => {
    const store = await makeStore(t, options(0))
    const a = await session(store)
    const b = await session(store, a.now, a.userId)
    const accessJti = randomUUID()
    t.equal(await store.endSession({ userId: a.userId, sid: a.sid, accessJti, accessExpiresAt: a.now + 60_000, now: a.now }), true)
    t.equal(await store.endSession({ userId: a.userId, sid: a.sid, now: a.now }), false, 'already ended')
    t.equal(await store.endSession({ userId: randomUUID(), sid: b.sid, now: a.now }), false, 'another user cannot end it')
    t.same(await store.liveRefreshJtis(a.userId), [b.jti])
    t.equal(await allowed(store, a, a.now + 1), false)
    t.equal(await allowed(store, b, a.now + 1), true, 'the other session is untouched')
    t.equal(await allowed(store, b, a.now + 1, accessJti), false, 'the revoked access jti is refused')
    t.same(await rotate(store, a, a.jti, a.now + 2), { outcome: 'unknown' })
  })

  tap.test(`${name}: endSessions ends all, or all but one`, async t => {
    const store = await makeStore(t, options(0))
    const a = await session(store)
    const b = await session(store, a.now, a.userId)
    const c = await session(store, a.now, a.userId)
    await store.endSessions({ userId: a.userId, except: b.sid, now: a.now + 1 })
    t.same(await store.liveRefreshJtis(a.userId), [b.jti])
    t.equal(await allowed(store, b, a.now + 2), true, 'the kept session still works')
    t.equal(await allowed(store, c, a.now + 2), false)

    const later = a.now + 5000
    await store.endSessions({ userId: a.userId, now: later })
    t.same(await store.liveRefreshJtis(a.userId), [])
    t.same(await store.listSessions(a.userId, later), [])
    t.equal(await allowed(store, b, later + 1), false)
    const next = await session(store, later + 1000, a.userId)
    t.equal(await allowed(store, next, later + 1000), true, 'a later login works')
  })

  tap.test(`${name}: listSessions reports each session's metadata`, async t => {
    const store = await makeStore(t, options(0))
    const s = await session(store)
    await rotate(store, s, s.jti, s.now + 500)
    const [listed, ...rest] = await store.listSessions(s.userId, s.now + 600)
    t.same(rest, [])
    t.same(listed, { id: s.sid, createdAt: s.now, lastUsedAt: s.now + 500, expiresAt: s.expiresAt, userAgent: 'ua2', ip: '127.0.0.2' })
    t.same(await store.listSessions(randomUUID(), s.now), [])
  })

  tap.test(`${name}: ping answers`, async t => {
    const store = await makeStore(t, options(0))
    await t.resolves(store.ping())
  })
}

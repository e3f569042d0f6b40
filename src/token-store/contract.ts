import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { MAX_SESSIONS_PER_USER, type TokenStore, type TokenStoreOptions } from './index.js'

/*
 * The contract every TokenStore keeps, as plain async cases that any test runner can run: each
 * throws (node:assert) on a broken promise. Times are passed in, so expiry is tested by moving
 * `now` rather than by waiting. With tap: `for (const c of tokenStoreContract(make)) t.test(c.name, c.run)`;
 * with node:test: `for (const c of tokenStoreContract(make)) test(c.name, c.run)`.
 */

export const IDLE = 60_000
export const ABSOLUTE = 10 * IDLE
export const GRACE = 5_000

/** Makes a fresh, empty store with these lifetimes; the case closes it when done. */
export type MakeStore = (options: TokenStoreOptions) => Promise<TokenStore>

export interface ContractCase {
  name: string
  run: () => Promise<void>
}

type Open = (options: TokenStoreOptions) => Promise<TokenStore>

export function tokenStoreContract (makeStore: MakeStore): ContractCase[] {
  const cases: ContractCase[] = []
  const test = (name: string, body: (open: Open) => Promise<void>) => cases.push({
    name,
    async run () {
      const opened: TokenStore[] = []
      try {
        await body(async options => {
          const store = await makeStore(options)
          opened.push(store)
          return store
        })
      } finally {
        for (const store of opened) await store.close()
      }
    }
  })
  const options = (reuseInterval: number) => ({ idleTtl: IDLE, absoluteTtl: ABSOLUTE, reuseInterval })

  async function session (store: TokenStore, now = Date.now(), userId = randomUUID(), roles: string[] = []) {
    const s = { userId, sid: randomUUID(), jti: randomUUID(), now, expiresAt: now + ABSOLUTE, userAgent: 'ua', ip: '127.0.0.1', roles }
    assert.equal(await store.createSession(s), true, 'session created')
    return s
  }
  const rotate = (store: TokenStore, s: { userId: string, sid: string }, jti: string, now: number) =>
    store.rotate({ userId: s.userId, sid: s.sid, jti, nextJti: randomUUID(), now, userAgent: 'ua2', ip: '127.0.0.2' })
  const allowed = (store: TokenStore, s: { userId: string, sid: string }, now: number, jti = randomUUID(), iat = Math.floor(now / 1000)) =>
    store.isAccessAllowed({ userId: s.userId, sid: s.sid, jti, iat, now })

  test('a new session is on the allowlist and allows access', async open => {
    const store = await open(options(0))
    const s = await session(store)
    assert.deepEqual(await store.liveRefreshJtis(s.userId), [s.jti])
    assert.equal(await allowed(store, s, s.now), true)
    assert.equal(await allowed(store, { ...s, sid: randomUUID() }, s.now), false, 'unknown session')
  })

  test('rotation swaps the jti; the spent one is reuse and revokes the session (strict)', async open => {
    const store = await open(options(0))
    const s = await session(store)
    const rotated = await rotate(store, s, s.jti, s.now + 1000)
    assert.equal(rotated.outcome, 'rotated')
    if (rotated.outcome !== 'rotated') return
    assert.equal(rotated.expiresAt, s.expiresAt, 'the absolute expiry is not extended')
    assert.deepEqual(await store.liveRefreshJtis(s.userId), [rotated.jti])
    assert.deepEqual(await rotate(store, s, s.jti, s.now + 1001), { outcome: 'reuse' })
    assert.deepEqual(await store.liveRefreshJtis(s.userId), [])
    assert.deepEqual(await rotate(store, s, rotated.jti, s.now + 1002), { outcome: 'unknown' }, 'the successor died with the session')
    assert.equal(await allowed(store, s, s.now + 1003), false, 'access tokens of the session stop working')
  })

  test('within the reuse interval the previous token gets the same successor', async open => {
    const store = await open(options(GRACE))
    const s = await session(store)
    const first = await rotate(store, s, s.jti, s.now + 10)
    const again = await rotate(store, s, s.jti, s.now + 10 + GRACE - 1)
    assert.equal(first.outcome, 'rotated')
    assert.equal(again.outcome, 'grace')
    assert.equal('jti' in again && again.jti, 'jti' in first && first.jti)
    assert.equal((await store.liveRefreshJtis(s.userId)).length, 1)
    assert.deepEqual(await rotate(store, s, s.jti, s.now + 10 + GRACE), { outcome: 'reuse' }, 'after the interval it is reuse')
    assert.deepEqual(await store.liveRefreshJtis(s.userId), [])
  })

  test('only the immediately previous token gets grace', async open => {
    const store = await open(options(GRACE))
    const s = await session(store)
    const r1 = await rotate(store, s, s.jti, s.now + 1)
    const r2 = await rotate(store, s, 'jti' in r1 ? r1.jti : '', s.now + 2)
    assert.equal(r2.outcome, 'rotated')
    assert.deepEqual(await rotate(store, s, s.jti, s.now + 3), { outcome: 'reuse' })
  })

  test('concurrent rotations of one token: exactly one wins (strict)', async open => {
    const store = await open(options(0))
    const s = await session(store)
    const now = s.now + 1
    const results = await Promise.all(Array.from({ length: 20 }, () => rotate(store, s, s.jti, now)))
    assert.equal(results.filter(r => r.outcome === 'rotated').length, 1)
    assert.equal(results.filter(r => r.outcome === 'rotated' || r.outcome === 'grace').length, 1)
    assert.ok((await store.liveRefreshJtis(s.userId)).length <= 1, 'never two live refresh tokens')
  })

  test('concurrent rotations within the interval all get one successor', async open => {
    const store = await open(options(GRACE))
    const s = await session(store)
    const results = await Promise.all(Array.from({ length: 20 }, () => rotate(store, s, s.jti, s.now + 1)))
    assert.ok(results.every(r => r.outcome === 'rotated' || r.outcome === 'grace'))
    assert.equal(new Set(results.map(r => 'jti' in r && r.jti)).size, 1)
    assert.equal((await store.liveRefreshJtis(s.userId)).length, 1)
  })

  test('idle timeout and absolute lifetime end a session', async open => {
    const store = await open(options(0))
    const s = await session(store)
    assert.equal(await allowed(store, s, s.now + IDLE - 1), true)
    assert.equal(await allowed(store, s, s.now + IDLE), false, 'idle: access refused')
    assert.deepEqual(await rotate(store, s, s.jti, s.now + IDLE), { outcome: 'expired' })
    assert.deepEqual(await store.liveRefreshJtis(s.userId), [], 'the expired jti left the allowlist')

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
    assert.equal(last.outcome, 'expired')
    assert.ok(now >= u.expiresAt, 'ended at the absolute expiry, not before')
    assert.deepEqual(await store.liveRefreshJtis(u.userId), [])
  })

  test('expired sessions are pruned from lists and the allowlist', async open => {
    const store = await open(options(0))
    const s = await session(store)
    const later = s.now + IDLE + 1
    const fresh = await session(store, later, s.userId)
    assert.deepEqual((await store.listSessions(s.userId, later)).map(x => x.id), [fresh.sid])
    assert.deepEqual(await store.liveRefreshJtis(s.userId), [fresh.jti])
  })

  test('endSession ends one session and revokes the asking access token', async open => {
    const store = await open(options(0))
    const a = await session(store)
    const b = await session(store, a.now, a.userId)
    const accessJti = randomUUID()
    assert.equal(await store.endSession({ userId: a.userId, sid: a.sid, accessJti, accessExpiresAt: a.now + 60_000, now: a.now }), true)
    assert.equal(await store.endSession({ userId: a.userId, sid: a.sid, now: a.now }), false, 'already ended')
    assert.equal(await store.endSession({ userId: randomUUID(), sid: b.sid, now: a.now }), false, 'another user cannot end it')
    assert.deepEqual(await store.liveRefreshJtis(a.userId), [b.jti])
    assert.equal(await allowed(store, a, a.now + 1), false)
    assert.equal(await allowed(store, b, a.now + 1), true, 'the other session is untouched')
    assert.equal(await allowed(store, b, a.now + 1, accessJti), false, 'the revoked access jti is refused')
    assert.deepEqual(await rotate(store, a, a.jti, a.now + 2), { outcome: 'unknown' })
  })

  test('endSessions ends all, or all but one', async open => {
    const store = await open(options(0))
    const a = await session(store)
    const b = await session(store, a.now, a.userId)
    const c = await session(store, a.now, a.userId)
    await store.endSessions({ userId: a.userId, except: b.sid, now: a.now + 1 })
    assert.deepEqual(await store.liveRefreshJtis(a.userId), [b.jti])
    assert.equal(await allowed(store, b, a.now + 2), true, 'the kept session still works')
    assert.equal(await allowed(store, c, a.now + 2), false)

    const later = a.now + 5000
    await store.endSessions({ userId: a.userId, now: later })
    assert.deepEqual(await store.liveRefreshJtis(a.userId), [])
    assert.deepEqual(await store.listSessions(a.userId, later), [])
    assert.equal(await allowed(store, b, later + 1), false)
    const next = await session(store, later + 1000, a.userId)
    assert.equal(await allowed(store, next, later + 1000), true, 'a later login works')
  })

  test('endSessions with except keeps the caller\'s earlier access tokens: no not-before mark', async open => {
    // A password change ends the other sessions; the caller's token, issued seconds before, keeps working.
    const store = await open(options(0))
    const kept = await session(store)
    const other = await session(store, kept.now, kept.userId)
    const iat = Math.floor(kept.now / 1000)
    await store.endSessions({ userId: kept.userId, except: kept.sid, now: kept.now + 5000 })
    assert.equal(await allowed(store, kept, kept.now + 5001, randomUUID(), iat), true, 'issued in an earlier second, still allowed')
    assert.equal(await allowed(store, other, kept.now + 5001, randomUUID(), iat), false, 'the other session is refused')
  })

  test('listSessions drops a session once it is idle', async open => {
    const store = await open(options(0))
    const s = await session(store)
    assert.deepEqual((await store.listSessions(s.userId, s.now + IDLE - 1)).map(x => x.id), [s.sid])
    assert.deepEqual(await store.listSessions(s.userId, s.now + IDLE), [], 'idle: no longer listed')
    assert.deepEqual(await store.liveRefreshJtis(s.userId), [], 'and its jti left the allowlist')
  })

  test('listSessions reports the metadata of each session', async open => {
    const store = await open(options(0))
    const s = await session(store)
    await rotate(store, s, s.jti, s.now + 500)
    const [listed, ...rest] = await store.listSessions(s.userId, s.now + 600)
    assert.deepEqual(rest, [])
    assert.deepEqual(listed, { id: s.sid, createdAt: s.now, lastUsedAt: s.now + 500, expiresAt: s.expiresAt, userAgent: 'ua2', ip: '127.0.0.2' })
    assert.deepEqual(await store.listSessions(randomUUID(), s.now), [])
  })

  test('every rotation returns the roles the session started with', async open => {
    const store = await open(options(GRACE))
    const roles = ['admin', 'billing "ops"', 'ünïcode, with comma']
    const s = await session(store, Date.now(), randomUUID(), roles)
    const plain = await session(store, s.now, s.userId)
    roles.push('added after login')
    const first = await rotate(store, s, s.jti, s.now + 1)
    assert.equal(first.outcome, 'rotated')
    assert.deepEqual('roles' in first && first.roles, ['admin', 'billing "ops"', 'ünïcode, with comma'], 'as they were at login')
    const again = await rotate(store, s, s.jti, s.now + 2)
    assert.equal(again.outcome, 'grace')
    assert.deepEqual('roles' in again && again.roles, ['admin', 'billing "ops"', 'ünïcode, with comma'], 'grace returns them too')
    const next = await store.rotate({ userId: s.userId, sid: s.sid, jti: 'jti' in first ? first.jti : '', nextJti: randomUUID(), now: s.now + 3, userAgent: null, ip: null, roles: ['other'] })
    assert.deepEqual('roles' in next && next.roles, ['admin', 'billing "ops"', 'ünïcode, with comma'], 'roles a request brings never replace the session\'s')
    const none = await rotate(store, plain, plain.jti, s.now + 4)
    assert.deepEqual('roles' in none && none.roles, [], 'no roles')
  })

  test('an account closed by endSessions gets no new session; its user\'s sessions are gone', async open => {
    const store = await open(options(0))
    const s = await session(store)
    const other = await session(store, s.now)
    await store.endSessions({ userId: s.userId, now: s.now + 1 })
    const afterLogoutAll = await session(store, s.now + 2, s.userId)
    assert.equal(await allowed(store, afterLogoutAll, s.now + 2), true, 'ending sessions alone does not close the account')

    await store.endSessions({ userId: s.userId, now: s.now + 3, closeAccount: true })
    assert.deepEqual(await rotate(store, afterLogoutAll, afterLogoutAll.jti, s.now + 4), { outcome: 'unknown' })
    const late = { userId: s.userId, sid: randomUUID(), jti: randomUUID(), now: s.now + 5, expiresAt: s.now + ABSOLUTE, userAgent: null, ip: null, roles: [] }
    assert.equal(await store.createSession(late), false, 'refused')
    assert.deepEqual(await store.liveRefreshJtis(s.userId), [], 'nothing stored')
    assert.deepEqual(await store.listSessions(s.userId, s.now + 5), [])
    assert.deepEqual(await rotate(store, late, late.jti, s.now + 6), { outcome: 'unknown' })
    assert.equal(await allowed(store, late, s.now + 6), false)
    assert.equal(await allowed(store, other, s.now + 6), true, 'other users are untouched')
    assert.equal((await rotate(store, other, other.jti, s.now + 7)).outcome, 'rotated')
  })

  test(`a user keeps ${MAX_SESSIONS_PER_USER} sessions at most: a new one ends the least recently used`, async open => {
    const store = await open(options(0))
    const now = Date.now()
    const first = await session(store, now)
    const rest = []
    for (let i = 1; i < MAX_SESSIONS_PER_USER; i++) rest.push(await session(store, now + i, first.userId))
    const [second] = rest as [typeof first]
    // The first session is used again: the second is now the least recently used.
    const refreshed = await rotate(store, first, first.jti, now + MAX_SESSIONS_PER_USER)
    assert.equal(refreshed.outcome, 'rotated')
    const newest = await session(store, now + MAX_SESSIONS_PER_USER + 1, first.userId)
    assert.equal((await store.listSessions(first.userId, newest.now)).length, MAX_SESSIONS_PER_USER, 'still the cap')
    assert.deepEqual(await rotate(store, second, second.jti, newest.now + 1), { outcome: 'unknown' }, 'the least recently used ended')
    assert.equal(await allowed(store, second, newest.now + 1), false, 'with its access tokens')
    assert.equal(await allowed(store, newest, newest.now + 1), true, 'the new one lives')
    assert.equal(await allowed(store, first, newest.now + 1), true, 'and the one used again')
    assert.equal((await store.liveRefreshJtis(first.userId)).length, MAX_SESSIONS_PER_USER, 'one live refresh token per session')
  })

  test('ping answers', async open => {
    const store = await open(options(0))
    await store.ping()
  })

  return cases
}

import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { REDIS_CLIENT_OPTIONS } from '../src/redis-client.js'
import type { TokenStore } from '../src/token-store/index.js'
import { ABSOLUTE, IDLE, tokenStoreContract } from '../src/token-store/contract.js'
import { createMemoryTokenStore } from '../src/token-store/memory.js'
import { createRedisTokenStore } from '../src/token-store/redis.js'
import { REDIS_URL, deleteRedisPrefix, storeRedis, tempDir } from './helper.js'

// The exported contract suite, run against both stores Tollgate ships.

t.test('redis', async t => {
  const cases = tokenStoreContract(async options => {
    const redis = new Redis(REDIS_URL, REDIS_CLIENT_OPTIONS)
    await redis.connect()
    const prefix = `t-${randomBytes(6).toString('hex')}`
    const store = createRedisTokenStore({ redis, prefix, ...options })
    // The store never closes the client it was handed: this test owns it.
    return {
      ...store,
      async close () {
        await store.close()
        redis.disconnect()
        await deleteRedisPrefix(prefix)
      }
    }
  })
  for (const c of cases) t.test(c.name, c.run)
})

t.test('memory', async t => {
  for (const c of tokenStoreContract(async options => createMemoryTokenStore(options))) t.test(c.name, c.run)
})

// A session stored by a version before sessions kept the user's roles: its refresh needs the roles
// from the database once. The store says so without changing anything, then takes them.
async function legacySessionCase (t: Test, store: TokenStore, session: { userId: string, sid: string, jti: string, now: number }) {
  const request = { userId: session.userId, sid: session.sid, jti: session.jti, nextJti: randomUUID(), now: session.now + 1, userAgent: null, ip: null }
  t.same(await store.rotate(request), { outcome: 'no-roles' }, 'asks for the roles')
  t.same(await store.liveRefreshJtis(session.userId), [session.jti], 'and spent nothing')
  t.equal(await store.isAccessAllowed({ userId: session.userId, sid: session.sid, jti: randomUUID(), iat: Math.floor(session.now / 1000), now: session.now + 1 }), true, 'access still allowed')
  const rotated = await store.rotate({ ...request, roles: ['admin'] })
  t.same(rotated, { outcome: 'rotated', jti: request.nextJti, expiresAt: session.now + ABSOLUTE, roles: ['admin'] }, 'rotates with the roles it was given')
  const next = await store.rotate({ ...request, jti: request.nextJti, nextJti: randomUUID(), now: session.now + 2 })
  t.match(next, { outcome: 'rotated', roles: ['admin'] }, 'and keeps them for later rotations')
  t.same(await store.rotate({ ...request, now: session.now + 3, roles: ['admin'] }), { outcome: 'reuse' }, 'a rotated-out token is still reuse')
}

const legacy = (now: number) => ({ userId: randomUUID(), sid: randomUUID(), jti: randomUUID(), now, expiresAt: now + ABSOLUTE, userAgent: 'ua', ip: '127.0.0.1' })
const lifetimes = { idleTtl: IDLE, absoluteTtl: ABSOLUTE, reuseInterval: 0 }

t.test('redis: a session hash without roles (written by an earlier version)', async t => {
  const { redis, prefix } = await storeRedis(t)
  const store = createRedisTokenStore({ redis, prefix, ...lifetimes })
  const session = legacy(Date.now())
  t.equal(await store.createSession({ ...session, roles: [] }), true)
  const hash = `${prefix}:{${session.userId}}:s:${session.sid}`
  t.equal(await redis.hdel(hash, 'roles'), 1, 'the hash as an earlier version wrote it')
  await legacySessionCase(t, store, session)
})

t.test('redis: a user\'s keys keep an expiry, never shorter than their longest session', async t => {
  // REFRESH_TOKEN_TTL lowered (or instances that disagree during a deploy): a login under the
  // shorter lifetime must not expire the keys under an older, longer session, which logout-all
  // (it walks the sessions key) would then miss (store review).
  const { redis, prefix } = await storeRedis(t)
  const long = createRedisTokenStore({ redis, prefix, idleTtl: IDLE, reuseInterval: 0, absoluteTtl: 3_600_000 })
  const short = createRedisTokenStore({ redis, prefix, idleTtl: IDLE, reuseInterval: 0, absoluteTtl: 60_000 })
  const now = Date.now()
  const userId = randomUUID()
  const old = { userId, sid: randomUUID(), jti: randomUUID(), now, expiresAt: now + 3_600_000, userAgent: null, ip: null, roles: [] }
  t.equal(await long.createSession(old), true)
  t.equal(await short.createSession({ ...old, sid: randomUUID(), jti: randomUUID(), expiresAt: now + 60_000 }), true)
  const key = (name: string) => `${prefix}:{${userId}}:${name}`
  for (const name of ['rt', 'sessions']) {
    t.ok(await redis.call('PEXPIRETIME', key(name)) as number >= old.expiresAt, `${name}: kept until the older session's end`)
  }

  // A key found without expiry (a rotation re-created it after it expired) gets one back.
  await redis.persist(key('rt'))
  await redis.persist(key('sessions'))
  const rotated = await short.rotate({ userId, sid: old.sid, jti: old.jti, nextJti: randomUUID(), now: now + 1, userAgent: null, ip: null })
  t.equal(rotated.outcome, 'rotated')
  for (const name of ['rt', 'sessions']) {
    t.ok(await redis.call('PEXPIRETIME', key(name)) as number >= old.expiresAt, `${name}: an expiry again after a rotation`)
  }
  await short.endSessions({ userId, now: now + 2 })
  t.same(await long.liveRefreshJtis(userId), [], 'and logout-all ends both sessions')
})

t.test('memory: a snapshot written before sessions kept roles still loads', async t => {
  const now = Date.now()
  const session = legacy(now)
  const closed = randomUUID()
  // A DATA_DIR that already exists, readable by others: the snapshot must not be.
  const dir = join(await tempDir(t), 'data')
  await mkdir(dir, { mode: 0o755 })
  const path = join(dir, 'token-store.json')
  // The snapshot format as the first version wrote it: no roles, no closedUntil.
  await writeFile(path, JSON.stringify({
    version: 1,
    users: [[session.userId, {
      rt: [session.jti],
      sessions: [[session.sid, { jti: session.jti, prev: null, prevAt: 0, created: now, lastUsed: now, expires: now + ABSOLUTE, idleUntil: now + IDLE, userAgent: 'ua', ip: '127.0.0.1' }]],
      nbf: 0,
      nbfUntil: 0
    }]],
    revokedAccess: []
  }))
  const store = createMemoryTokenStore({ ...lifetimes, snapshotPath: path })
  await legacySessionCase(t, store, session)

  // What this version writes comes back: roles and a closed account.
  await store.endSessions({ userId: closed, now, closeAccount: true })
  const fresh = { ...legacy(now), roles: ['reader'] }
  await store.createSession(fresh)
  await store.close()
  t.equal((await stat(path)).mode & 0o777, 0o600, 'the snapshot is readable by its owner only, in a directory that is not')
  const reopened = createMemoryTokenStore({ ...lifetimes, snapshotPath: path })
  t.teardown(() => reopened.close())
  t.match(await reopened.rotate({ userId: fresh.userId, sid: fresh.sid, jti: fresh.jti, nextJti: randomUUID(), now: now + 1, userAgent: null, ip: null }), { outcome: 'rotated', roles: ['reader'] })
  t.equal(await reopened.createSession({ ...legacy(now), userId: closed, roles: [] }), false, 'the closed account stays closed')
})

t.test('memory: a snapshot is used once; after a crash, no session comes back that was ended since', async t => {
  const path = join(await tempDir(t), 'token-store.json')
  const now = Date.now()
  const session = { ...legacy(now), roles: [] }
  const first = createMemoryTokenStore({ ...lifetimes, snapshotPath: path })
  await first.createSession(session)
  await first.close()

  const second = createMemoryTokenStore({ ...lifetimes, snapshotPath: path })
  t.same(await second.liveRefreshJtis(session.userId), [session.jti], 'a graceful stop keeps the session')
  await t.rejects(stat(path), { code: 'ENOENT' }, 'the snapshot is gone once loaded')
  t.equal(await second.endSession({ userId: session.userId, sid: session.sid, now: now + 1 }), true, 'then the session ends (a logout)')
  // The process is killed: no close(), so no snapshot.

  const third = createMemoryTokenStore({ ...lifetimes, snapshotPath: path })
  t.teardown(() => third.close())
  t.same(await third.liveRefreshJtis(session.userId), [], 'the ended session does not come back')
  t.match(await third.rotate({ userId: session.userId, sid: session.sid, jti: session.jti, nextJti: randomUUID(), now: now + 2, userAgent: null, ip: null }), { outcome: 'unknown' }, 'its refresh token is refused')
})

t.test('memory: a damaged snapshot stops the start with its path, not a bare JSON error', async t => {
  const path = join(await tempDir(t), 'token-store.json')
  await writeFile(path, '{"version":1,"us')
  t.throws(() => createMemoryTokenStore({ ...lifetimes, snapshotPath: path }), { message: `${path}: not a token store snapshot (Unterminated string in JSON at position 16); move it away to start with no sessions` })
})

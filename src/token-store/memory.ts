import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { MAX_SESSIONS_PER_USER, type RotateResult, type SessionRecord, type TokenStore, type TokenStoreOptions } from './index.js'

interface Session {
  jti: string
  prev: string | null
  prevAt: number
  created: number
  lastUsed: number
  expires: number
  idleUntil: number
  userAgent: string | null
  ip: string | null
  /** Absent in sessions of snapshots written before roles were kept. */
  roles?: string[]
}

interface UserState {
  /** The allowlist: live refresh jtis. */
  rt: Set<string>
  sessions: Map<string, Session>
  /** Access tokens issued before this second (unix s) are rejected, until `nbfUntil`. */
  nbf: number
  nbfUntil: number
  /** The account was deleted: no session starts before this time. */
  closedUntil: number
}

export interface MemoryTokenStoreOptions extends TokenStoreOptions {
  /** Where the state is kept across graceful restarts (written on close, read at start). */
  snapshotPath?: string
}

// Version 1 throughout: later fields are optional, so snapshots of earlier versions still load.
interface Snapshot {
  version: 1
  users: Array<[string, { rt: string[], sessions: Array<[string, Session]>, nbf: number, nbfUntil: number, closedUntil?: number }]>
  revokedAccess: Array<[string, number]>
}

const SWEEP_INTERVAL_MS = 60_000

/**
 * The embedded default's token store: the semantics of the Redis store (see ./redis.ts)
 * for one process. Every method does its work synchronously before its first await, so each is
 * atomic the way a Lua script is on Redis.
 */
export function createMemoryTokenStore ({ idleTtl, reuseInterval, absoluteTtl, snapshotPath }: MemoryTokenStoreOptions): TokenStore {
  const users = new Map<string, UserState>()
  /** `<user id>:<access jti>` → when that access token expires. */
  const revokedAccess = new Map<string, number>()

  if (snapshotPath) {
    const snapshot = readSnapshot(snapshotPath)
    for (const [userId, u] of snapshot?.users ?? []) {
      users.set(userId, { rt: new Set(u.rt), sessions: new Map(u.sessions), nbf: u.nbf, nbfUntil: u.nbfUntil, closedUntil: u.closedUntil ?? 0 })
    }
    for (const [key, until] of snapshot?.revokedAccess ?? []) revokedAccess.set(key, until)
  }

  const stateOf = (userId: string): UserState => {
    let state = users.get(userId)
    if (!state) {
      state = { rt: new Set(), sessions: new Map(), nbf: 0, nbfUntil: 0, closedUntil: 0 }
      users.set(userId, state)
    }
    return state
  }

  function drop (state: UserState, sid: string): boolean {
    const session = state.sessions.get(sid)
    if (!session) return false
    state.rt.delete(session.jti)
    state.sessions.delete(sid)
    return true
  }

  function prune (userId: string, state: UserState, now: number) {
    for (const [sid, session] of state.sessions) {
      if (session.idleUntil <= now) drop(state, sid)
    }
    if (state.sessions.size === 0 && state.nbfUntil <= now && state.closedUntil <= now) users.delete(userId)
  }

  // Entries expire even for users who never come back.
  const sweeper = setInterval(function sweep () {
    const now = Date.now()
    for (const [userId, state] of users) prune(userId, state, now)
    for (const [key, expiresAt] of revokedAccess) if (expiresAt <= now) revokedAccess.delete(key)
  }, SWEEP_INTERVAL_MS)
  sweeper.unref()

  return {
    kind: 'memory',

    async createSession (s) {
      const state = stateOf(s.userId)
      prune(s.userId, state, s.now)
      if (state.closedUntil > s.now) return false
      users.set(s.userId, state)
      state.sessions.set(s.sid, {
        jti: s.jti,
        prev: null,
        prevAt: 0,
        created: s.now,
        lastUsed: s.now,
        expires: s.expiresAt,
        idleUntil: Math.min(s.now + idleTtl, s.expiresAt),
        userAgent: s.userAgent,
        ip: s.ip,
        roles: [...s.roles]
      })
      state.rt.add(s.jti)
      // Over the cap: the sessions that go idle soonest (used least recently) end, never the new one.
      if (state.sessions.size > MAX_SESSIONS_PER_USER) {
        const leastRecent = [...state.sessions].filter(([sid]) => sid !== s.sid).sort(([, a], [, b]) => a.idleUntil - b.idleUntil)
        for (const [sid] of leastRecent.slice(0, state.sessions.size - MAX_SESSIONS_PER_USER)) drop(state, sid)
      }
      return true
    },

    async rotate (q): Promise<RotateResult> {
      const state = users.get(q.userId)
      const session = state?.sessions.get(q.sid)
      if (!state || !session) return { outcome: 'unknown' }
      if (q.now >= session.idleUntil) {
        drop(state, q.sid)
        return { outcome: 'expired' }
      }
      if (!session.roles) {
        if (!q.roles) return { outcome: 'no-roles' }
        session.roles = [...q.roles]
      }
      const roles = [...session.roles]
      if (q.jti === session.jti) {
        state.rt.delete(q.jti)
        state.rt.add(q.nextJti)
        Object.assign(session, {
          jti: q.nextJti,
          prev: q.jti,
          prevAt: q.now,
          lastUsed: q.now,
          idleUntil: Math.min(q.now + idleTtl, session.expires),
          userAgent: q.userAgent,
          ip: q.ip
        })
        return { outcome: 'rotated', jti: q.nextJti, expiresAt: session.expires, roles }
      }
      if (q.jti === session.prev && reuseInterval > 0 && q.now - session.prevAt < reuseInterval) {
        return { outcome: 'grace', jti: session.jti, expiresAt: session.expires, roles }
      }
      drop(state, q.sid)
      return { outcome: 'reuse' }
    },

    async isAccessAllowed (a) {
      const revokedUntil = revokedAccess.get(`${a.userId}:${a.jti}`)
      if (revokedUntil !== undefined && revokedUntil > a.now) return false
      const state = users.get(a.userId)
      const session = state?.sessions.get(a.sid)
      if (!state || !session || session.idleUntil <= a.now) return false
      return !(state.nbfUntil > a.now && a.iat < state.nbf)
    },

    async endSession (e) {
      const state = users.get(e.userId)
      const existed = state ? drop(state, e.sid) : false
      if (e.accessJti && e.accessExpiresAt && e.accessExpiresAt > e.now) {
        revokedAccess.set(`${e.userId}:${e.accessJti}`, e.accessExpiresAt)
      }
      return existed
    },

    async endSessions (e) {
      const state = stateOf(e.userId)
      for (const sid of [...state.sessions.keys()]) {
        if (sid !== e.except) drop(state, sid)
      }
      if (e.except === undefined) {
        state.nbf = Math.floor(e.now / 1000)
        state.nbfUntil = e.now + absoluteTtl
      }
      if (e.closeAccount === true) state.closedUntil = e.now + absoluteTtl
      prune(e.userId, state, e.now)
    },

    async listSessions (userId, now): Promise<SessionRecord[]> {
      const state = users.get(userId)
      if (!state) return []
      prune(userId, state, now)
      return [...state.sessions].map(([id, s]) => ({
        id,
        createdAt: s.created,
        lastUsedAt: s.lastUsed,
        expiresAt: s.expires,
        userAgent: s.userAgent,
        ip: s.ip
      }))
    },

    async liveRefreshJtis (userId) {
      return [...(users.get(userId)?.rt ?? [])]
    },

    async ping () {},

    async close () {
      clearInterval(sweeper)
      if (!snapshotPath) return
      const snapshot: Snapshot = {
        version: 1,
        users: [...users].map(([id, u]) => [id, { rt: [...u.rt], sessions: [...u.sessions], nbf: u.nbf, nbfUntil: u.nbfUntil, closedUntil: u.closedUntil }]),
        revokedAccess: [...revokedAccess]
      }
      // Write, flush to disk, then rename (and flush the rename): a crash or power cut mid-way
      // leaves either no snapshot or a whole one, never a torn or empty file.
      const file = openSync(`${snapshotPath}.tmp`, 'w', 0o600)
      try {
        writeSync(file, JSON.stringify(snapshot))
        fsyncSync(file)
      } finally {
        closeSync(file)
      }
      renameSync(`${snapshotPath}.tmp`, snapshotPath)
      syncDirectory(dirname(snapshotPath))
    }
  }
}

/**
 * Reads the snapshot of the last graceful stop, and deletes it before any request is served: it is
 * written only by close(), so after a crash an older snapshot would bring back every session
 * revoked since it was written (logouts, password changes, deleted accounts). Without one, a crash
 * loses the sessions instead: the safe side.
 */
function readSnapshot (path: string): Snapshot | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let snapshot: Snapshot
  try {
    snapshot = JSON.parse(text) as Snapshot
  } catch (err) {
    throw new Error(`${path}: not a token store snapshot (${(err as Error).message}); move it away to start with no sessions`)
  }
  if (snapshot.version !== 1) throw new Error(`${path}: unknown token store snapshot version`)
  unlinkSync(path)
  syncDirectory(dirname(path))
  return snapshot
}

/** Makes a rename or unlink in `dir` durable. */
function syncDirectory (dir: string): void {
  const handle = openSync(dir, 'r')
  try {
    fsyncSync(handle)
  } finally {
    closeSync(handle)
  }
}

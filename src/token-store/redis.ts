import { DependencyError } from '../errors.js'
import { REDIS_CLIENT_OPTIONS, pingRedis, type RedisClient } from '../redis-client.js'
import { MAX_SESSIONS_PER_USER, type RotateResult, type SessionRecord, type TokenStore, type TokenStoreOptions } from './index.js'

/*
 * Keys of one user share the hash tag {<user id>}, so every script below touches one Cluster slot.
 *   <p>:{u}:rt            SET   live refresh jtis: the allowlist
 *   <p>:{u}:sessions      ZSET  session ids scored by the time they go idle (pruned on write)
 *   <p>:{u}:s:<sid>       HASH  jti, prev, prev_at, created, last_used, expires, idle_until, ua, ip,
 *                               roles (JSON; absent in hashes written before roles were kept)
 *                               (kept one absolute lifetime past `expires`, until pruned)
 *   <p>:{u}:at-revoked:<jti>     revoked access jti, until that token expires
 *   <p>:{u}:nbf           access tokens issued before this second (unix s) are rejected
 *   <p>:{u}:closed        the account was deleted: no new session (one absolute lifetime)
 * A refresh token names its session (sid, signed), so a rotated-out jti is recognised as one that
 * is no longer its session's current jti: no key per rotated-out jti is needed.
 *
 * Every script declares in KEYS each key whose name is known before it runs, KEYS[1] and KEYS[2]
 * always being the user's `rt` and `sessions`, so a Cluster client routes it by their slot. The
 * hashes of the user's other sessions (found in the `sessions` ZSET while pruning, ending or listing)
 * cannot be declared up front: their names are built in Lua from KEYS[1]'s name (see HELPERS), never
 * from ARGV, so they carry the same {<user id>} tag and live in the slot of the declared keys, which
 * Redis Cluster allows.
 */

// A write that reaches Redis later than this after it was sent (Redis hung, then resumed) is
// dropped: the client was already told 503, so applying it would rotate or create behind its back.
// The script compares the deadline with Redis's clock, so it is set in Redis's time (redisClock).
const LATE_AFTER_MS = 2500
// How often the offset between the app's clock and Redis's is measured again (on a write, in the
// background), how soon after a measurement that failed or took too long, and the longest round
// trip a measurement may take to count.
const CLOCK_MEASURE_EVERY_MS = 60_000
const CLOCK_MEASURE_RETRY_MS = 1_000
const CLOCK_MEASURE_MAX_RTT_MS = 100

// KEYS[1] is `<p>:{u}:rt`, KEYS[2] `<p>:{u}:sessions`. `base` (`<p>:{u}`) is KEYS[1] without its
// ':rt': session hashes named from it share the declared keys' hash tag, hence their slot.
const HELPERS = `
local rt_key, sessions_key = KEYS[1], KEYS[2]
local base = string.sub(rt_key, 1, -4)
local function late(deadline)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline)
end
local function drop(sid)
  local skey = base .. ':s:' .. sid
  local jti = redis.call('HGET', skey, 'jti')
  if jti then redis.call('SREM', rt_key, jti) end
  redis.call('ZREM', sessions_key, sid)
  return redis.call('DEL', skey)
end
-- The user's rt and sessions keys live at least until at (a session's absolute end), and are never
-- cut shorter: a login under a shorter REFRESH_TOKEN_TTL must not expire them under older, longer
-- sessions, which logout-all would then miss. A key left without expiry (-1) gets one.
local function keep_until(key, at)
  local current = redis.call('PEXPIRETIME', key)
  if current == -1 or (current >= 0 and current < at) then redis.call('PEXPIREAT', key, at) end
end
local function prune(now)
  local expired = redis.call('ZRANGEBYSCORE', sessions_key, '-inf', now)
  for _, sid in ipairs(expired) do drop(sid) end
end
`

// KEYS: rt sessions session closed; ARGV: sid jti now expiresAt idleTtl ua ip keyTtl deadline roles
// maxSessions
const CREATE_SESSION = `${HELPERS}
if late(ARGV[9]) then return 0 end
if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end
local sid, jti = ARGV[1], ARGV[2]
local now, expires = tonumber(ARGV[3]), tonumber(ARGV[4])
prune(now)
local idle_until = math.min(now + tonumber(ARGV[5]), expires)
local skey = KEYS[3]
redis.call('HSET', skey, 'jti', jti, 'created', now, 'last_used', now, 'expires', expires,
  'idle_until', idle_until, 'ua', ARGV[6], 'ip', ARGV[7], 'roles', ARGV[10])
-- The hash outlives the session (whose end the scripts check themselves), so the prune that
-- finally drops the session still finds its jti and removes it from the allowlist.
redis.call('PEXPIREAT', skey, expires + tonumber(ARGV[8]))
redis.call('SADD', rt_key, jti)
redis.call('ZADD', sessions_key, idle_until, sid)
-- Over the cap: the sessions that go idle soonest (used least recently) end, never the new one.
local excess = redis.call('ZCARD', sessions_key) - tonumber(ARGV[11])
if excess > 0 then
  for _, old in ipairs(redis.call('ZRANGE', sessions_key, 0, excess)) do
    if excess > 0 and old ~= sid then drop(old); excess = excess - 1 end
  end
end
keep_until(rt_key, expires)
keep_until(sessions_key, expires)
return 1
`

// KEYS: rt sessions session; ARGV: sid jti nextJti now idleTtl reuseInterval ua ip deadline roles
// (roles: '' unless the caller read them for a session stored without them)
const ROTATE = `${HELPERS}
if late(ARGV[9]) then return {'late'} end
local sid, jti, next_jti = ARGV[1], ARGV[2], ARGV[3]
local now, interval = tonumber(ARGV[4]), tonumber(ARGV[6])
local skey = KEYS[3]
local s = redis.call('HMGET', skey, 'jti', 'prev', 'prev_at', 'expires', 'idle_until', 'roles')
if not s[1] then return {'unknown'} end
if now >= tonumber(s[5]) then drop(sid); return {'expired'} end
local roles = s[6]
if not roles then
  if ARGV[10] == '' then return {'no-roles'} end
  roles = ARGV[10]
  redis.call('HSET', skey, 'roles', roles)
end
if jti == s[1] then
  local idle_until = math.min(now + tonumber(ARGV[5]), tonumber(s[4]))
  redis.call('SREM', rt_key, jti)
  redis.call('SADD', rt_key, next_jti)
  redis.call('HSET', skey, 'jti', next_jti, 'prev', jti, 'prev_at', now, 'last_used', now,
    'idle_until', idle_until, 'ua', ARGV[7], 'ip', ARGV[8])
  redis.call('ZADD', sessions_key, idle_until, sid)
  keep_until(rt_key, tonumber(s[4]))
  keep_until(sessions_key, tonumber(s[4]))
  return {'rotated', next_jti, s[4], roles}
end
if jti == s[2] and interval > 0 and now - tonumber(s[3]) < interval then
  return {'grace', s[1], s[4], roles}
end
drop(sid)
return {'reuse'}
`

// KEYS: session nbf revoked; ARGV: now iat
const IS_ACCESS_ALLOWED = `
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local idle_until = redis.call('HGET', KEYS[1], 'idle_until')
if not idle_until or tonumber(idle_until) <= tonumber(ARGV[1]) then return 0 end
local nbf = redis.call('GET', KEYS[2])
if nbf and tonumber(ARGV[2]) < tonumber(nbf) then return 0 end
return 1
`

// KEYS: rt sessions session revoked; ARGV: sid accessJti accessExpiresAt
// (no access jti: `revoked` is declared, named with an empty jti, and left alone)
const END_SESSION = `${HELPERS}
local existed = drop(ARGV[1])
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[4], 1, 'PXAT', ARGV[3])
end
return existed
`

// KEYS: rt sessions nbf closed; ARGV: except nbf keyTtl close ('' except = all sessions, and nbf
// is set; close '1' = the account is closed to new sessions)
const END_SESSIONS = `${HELPERS}
local except = ARGV[1]
for _, sid in ipairs(redis.call('ZRANGE', sessions_key, 0, -1)) do
  if sid ~= except then drop(sid) end
end
if except == '' then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3]) end
if ARGV[4] == '1' then redis.call('SET', KEYS[4], 1, 'PX', ARGV[3]) end
return 1
`

// KEYS: rt sessions; ARGV: now
const LIST_SESSIONS = `${HELPERS}
prune(tonumber(ARGV[1]))
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', sessions_key, 0, -1)) do
  local s = redis.call('HMGET', base .. ':s:' .. sid, 'created', 'last_used', 'expires', 'ua', 'ip')
  if s[1] then table.insert(out, {sid, s[1], s[2], s[3], s[4], s[5]}) end
end
return out
`

interface TollgateCommands {
  smembers (key: string): Promise<string[]>
  tollgateCreateSession (...args: Array<string | number>): Promise<number>
  tollgateRotate (...args: Array<string | number>): Promise<string[]>
  tollgateIsAccessAllowed (...args: Array<string | number>): Promise<number>
  tollgateEndSession (...args: Array<string | number>): Promise<number>
  tollgateEndSessions (...args: Array<string | number>): Promise<number>
  tollgateListSessions (...args: Array<string | number>): Promise<string[][]>
}

/**
 * The revocation check of every authenticated request, in one round trip: the session is live, the
 * access jti not revoked, and the token issued after the user's not-before. Read-only, so an app
 * that only verifies tokens (tollgate/verify) runs it against the Tollgate server's Redis.
 */
export function createRedisAccessCheck ({ redis, prefix }: { redis: RedisClient, prefix: string }): TokenStore['isAccessAllowed'] {
  const r = withScripts(redis, [['tollgateIsAccessAllowed', IS_ACCESS_ALLOWED, 3]])
  return async function isAccessAllowed (a) {
    const base = `${prefix}:{${a.userId}}`
    return await call(() => r.tollgateIsAccessAllowed(`${base}:s:${a.sid}`, `${base}:nbf`, `${base}:at-revoked:${a.jti}`, a.now, a.iat)) === 1
  }
}

// defineCommand adds each script as a method of the client, once per client.
function withScripts (redis: RedisClient, scripts: Array<[keyof TollgateCommands, string, number]>): TollgateCommands {
  for (const [name, lua, numberOfKeys] of scripts) {
    if (!(name in redis)) redis.defineCommand(name, { lua, numberOfKeys })
  }
  return redis as unknown as TollgateCommands
}

// One deadline per call, from the moment it is made. The client's commandTimeout starts only when a
// command is written, and with auto-pipelining a command made while an earlier batch is in flight
// is written after that batch settles: on a hung Redis it answered after two timeouts, not one.
const DEADLINE_MS = REDIS_CLIENT_OPTIONS.commandTimeout

// Any Redis failure (down, hung, timed out) becomes a 503: revocation fails closed.
async function call<T> (run: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from Redis within ${DEADLINE_MS} ms`)), DEADLINE_MS)
  })
  try {
    return await Promise.race([run(), deadline])
  } catch (err) {
    throw new DependencyError('redis', err)
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Redis's time as the app sees it: the app's clock plus the offset last measured (Redis's TIME minus
 * the app's clock at the middle of the round trip). Without it, an app clock 2.5 s behind Redis's
 * would make every write late (every login and refresh a 503), and one ahead would let late writes
 * through. Measured when made, then again on a write once a minute old, in the background; a failed
 * or slow measurement keeps the last offset and is tried again a second later. On a Cluster, TIME
 * asks any one node: the nodes' clocks are taken to agree with each other.
 */
function redisClock (redis: RedisClient) {
  let offset = 0
  // When the next measurement is due.
  let dueAt = 0
  let measuring: Promise<void> | undefined
  const first = measure()

  async function measure (): Promise<void> {
    dueAt = Date.now() + CLOCK_MEASURE_RETRY_MS
    try {
      const sent = Date.now()
      const [seconds, micros] = await call(() => redis.call('TIME')) as [string, string]
      const received = Date.now()
      if (received - sent > CLOCK_MEASURE_MAX_RTT_MS) return
      offset = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - Math.round((sent + received) / 2)
      dueAt = received + CLOCK_MEASURE_EVERY_MS
    } catch {
      // Redis is away: the writes fail too.
    } finally {
      measuring = undefined
    }
  }

  return {
    /**
     * A write's deadline, in Redis's time. Only the first write waits for a measurement (the one
     * started at boot): a later one never waits, so a hung Redis still answers 503 within a timeout.
     */
    async deadline (): Promise<number> {
      await first
      if (!measuring && Date.now() >= dueAt) measuring = measure()
      return Date.now() + offset + LATE_AFTER_MS
    }
  }
}

export interface RedisTokenStoreOptions extends TokenStoreOptions {
  /** A client its caller owns (and closes); REDIS_CLIENT_OPTIONS make an outage fail fast. */
  redis: RedisClient
  /** Every key starts with it: several deployments can share one Redis. */
  prefix: string
}

export function createRedisTokenStore ({ redis, prefix, idleTtl, reuseInterval, absoluteTtl }: RedisTokenStoreOptions): TokenStore {
  const r = withScripts(redis, [
    ['tollgateCreateSession', CREATE_SESSION, 4],
    ['tollgateRotate', ROTATE, 3],
    ['tollgateEndSession', END_SESSION, 4],
    ['tollgateEndSessions', END_SESSIONS, 4],
    ['tollgateListSessions', LIST_SESSIONS, 2]
  ])
  const base = (userId: string) => `${prefix}:{${userId}}`
  // KEYS[1] and KEYS[2] of every script but the access check: HELPERS derives the base from KEYS[1].
  const userKeys = (userId: string) => [`${base(userId)}:rt`, `${base(userId)}:sessions`]
  const sessionKey = (userId: string, sid: string) => `${base(userId)}:s:${sid}`
  const closedKey = (userId: string) => `${base(userId)}:closed`
  const clock = redisClock(redis)

  return {
    kind: 'redis',

    async createSession (s) {
      const deadline = await clock.deadline()
      const created = await call(() => r.tollgateCreateSession(
        ...userKeys(s.userId), sessionKey(s.userId, s.sid), closedKey(s.userId),
        s.sid, s.jti, s.now, s.expiresAt, idleTtl, s.userAgent ?? '', s.ip ?? '', absoluteTtl, deadline, JSON.stringify(s.roles), MAX_SESSIONS_PER_USER
      ))
      if (created === 0) throw new DependencyError('redis', new Error('write arrived after its deadline'))
      return created === 1
    },

    async rotate (q): Promise<RotateResult> {
      const deadline = await clock.deadline()
      const [outcome, jti, expiresAt, roles] = await call(() => r.tollgateRotate(
        ...userKeys(q.userId), sessionKey(q.userId, q.sid),
        q.sid, q.jti, q.nextJti, q.now, idleTtl, reuseInterval, q.userAgent ?? '', q.ip ?? '', deadline, q.roles ? JSON.stringify(q.roles) : ''
      ))
      if (outcome === 'late') throw new DependencyError('redis', new Error('write arrived after its deadline'))
      if (outcome === 'rotated' || outcome === 'grace') {
        return { outcome, jti: jti as string, expiresAt: Number(expiresAt), roles: JSON.parse(roles as string) as string[] }
      }
      return { outcome: outcome as 'reuse' | 'unknown' | 'expired' | 'no-roles' }
    },

    isAccessAllowed: createRedisAccessCheck({ redis, prefix }),

    endSession: async (e) => await call(() => r.tollgateEndSession(
      ...userKeys(e.userId), sessionKey(e.userId, e.sid), `${base(e.userId)}:at-revoked:${e.accessJti ?? ''}`, e.sid, e.accessJti ?? '', e.accessExpiresAt ?? 0
    )) === 1,

    endSessions: (e) => call(() => r.tollgateEndSessions(
      ...userKeys(e.userId), `${base(e.userId)}:nbf`, closedKey(e.userId), e.except ?? '', Math.floor(e.now / 1000), absoluteTtl, e.closeAccount === true ? '1' : ''
    )).then(() => undefined),

    async listSessions (userId, now): Promise<SessionRecord[]> {
      const rows = await call(() => r.tollgateListSessions(...userKeys(userId), now))
      return rows.map(([id, created, lastUsed, expires, ua, ip]) => ({
        id: id as string,
        createdAt: Number(created),
        lastUsedAt: Number(lastUsed),
        expiresAt: Number(expires),
        userAgent: ua || null,
        ip: ip || null
      }))
    },

    liveRefreshJtis: (userId) => call(() => r.smembers(`${base(userId)}:rt`)),

    ping: () => call(() => pingRedis(redis)),

    // The client is its caller's to close.
    async close () {}
  }
}

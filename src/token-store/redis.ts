import { DependencyError } from '../errors.js'
import type { RedisClient } from '../redis-client.js'
import type { RotateResult, SessionRecord, TokenStore, TokenStoreOptions } from './index.js'

/*
 * Keys of one user share the hash tag {<user id>}, so every script below touches one Cluster slot.
 *   <p>:{u}:rt            SET   live refresh jtis: the allowlist
 *   <p>:{u}:sessions      ZSET  session ids scored by the time they go idle (pruned on write)
 *   <p>:{u}:s:<sid>       HASH  jti, prev, prev_at, created, last_used, expires, idle_until, ua, ip
 *                               (kept one absolute lifetime past `expires`, until pruned)
 *   <p>:{u}:at-revoked:<jti>     revoked access jti, until that token expires
 *   <p>:{u}:nbf           access tokens issued before this second (unix s) are rejected
 * A refresh token names its session (sid, signed), so a rotated-out jti is recognised as one that
 * is no longer its session's current jti: no key per rotated-out jti is needed.
 */

// A write that reaches Redis later than this after it was sent (Redis hung, then resumed) is
// dropped: the client was already told 503, so applying it would rotate or create behind its back.
// Compared with Redis's clock, so it allows for skew between the app's and Redis's clocks.
const LATE_AFTER_MS = 2500

const HELPERS = `
local function late(deadline)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline)
end
local function drop(base, sid)
  local skey = base .. ':s:' .. sid
  local jti = redis.call('HGET', skey, 'jti')
  if jti then redis.call('SREM', base .. ':rt', jti) end
  redis.call('ZREM', base .. ':sessions', sid)
  return redis.call('DEL', skey)
end
local function prune(base, now)
  local expired = redis.call('ZRANGEBYSCORE', base .. ':sessions', '-inf', now)
  for _, sid in ipairs(expired) do drop(base, sid) end
end
`

// ARGV: base sid jti now expiresAt idleTtl ua ip keyTtl deadline
const CREATE_SESSION = `${HELPERS}
if late(ARGV[10]) then return 0 end
local base, sid, jti = ARGV[1], ARGV[2], ARGV[3]
local now, expires = tonumber(ARGV[4]), tonumber(ARGV[5])
prune(base, now)
local idle_until = math.min(now + tonumber(ARGV[6]), expires)
local skey = base .. ':s:' .. sid
redis.call('HSET', skey, 'jti', jti, 'created', now, 'last_used', now, 'expires', expires,
  'idle_until', idle_until, 'ua', ARGV[7], 'ip', ARGV[8])
-- The hash outlives the session (whose end the scripts check themselves), so the prune that
-- finally drops the session still finds its jti and removes it from the allowlist.
redis.call('PEXPIREAT', skey, expires + tonumber(ARGV[9]))
redis.call('SADD', base .. ':rt', jti)
redis.call('ZADD', base .. ':sessions', idle_until, sid)
redis.call('PEXPIRE', base .. ':rt', ARGV[9])
redis.call('PEXPIRE', base .. ':sessions', ARGV[9])
return 1
`

// ARGV: base sid jti nextJti now idleTtl reuseInterval ua ip deadline
const ROTATE = `${HELPERS}
if late(ARGV[10]) then return {'late'} end
local base, sid, jti, next_jti = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, interval = tonumber(ARGV[5]), tonumber(ARGV[7])
local skey = base .. ':s:' .. sid
local s = redis.call('HMGET', skey, 'jti', 'prev', 'prev_at', 'expires', 'idle_until')
if not s[1] then return {'unknown'} end
if now >= tonumber(s[5]) then drop(base, sid); return {'expired'} end
if jti == s[1] then
  local idle_until = math.min(now + tonumber(ARGV[6]), tonumber(s[4]))
  redis.call('SREM', base .. ':rt', jti)
  redis.call('SADD', base .. ':rt', next_jti)
  redis.call('HSET', skey, 'jti', next_jti, 'prev', jti, 'prev_at', now, 'last_used', now,
    'idle_until', idle_until, 'ua', ARGV[8], 'ip', ARGV[9])
  redis.call('ZADD', base .. ':sessions', idle_until, sid)
  return {'rotated', next_jti, s[4]}
end
if jti == s[2] and interval > 0 and now - tonumber(s[3]) < interval then
  return {'grace', s[1], s[4]}
end
drop(base, sid)
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

// ARGV: base sid accessJti accessExpiresAt
const END_SESSION = `${HELPERS}
local existed = drop(ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SET', ARGV[1] .. ':at-revoked:' .. ARGV[3], 1, 'PXAT', ARGV[4])
end
return existed
`

// ARGV: base except nbf keyTtl ('' except = all sessions, and nbf is set)
const END_SESSIONS = `${HELPERS}
local base, except = ARGV[1], ARGV[2]
for _, sid in ipairs(redis.call('ZRANGE', base .. ':sessions', 0, -1)) do
  if sid ~= except then drop(base, sid) end
end
if except == '' then redis.call('SET', base .. ':nbf', ARGV[3], 'PX', ARGV[4]) end
return 1
`

// ARGV: base now
const LIST_SESSIONS = `${HELPERS}
local base = ARGV[1]
prune(base, tonumber(ARGV[2]))
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', base .. ':sessions', 0, -1)) do
  local s = redis.call('HMGET', base .. ':s:' .. sid, 'created', 'last_used', 'expires', 'ua', 'ip')
  if s[1] then table.insert(out, {sid, s[1], s[2], s[3], s[4], s[5]}) end
end
return out
`

interface TollgateCommands {
  smembers (key: string): Promise<string[]>
  ping (): Promise<string>
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

// Any Redis failure (down, hung, timed out) becomes a 503: revocation fails closed.
async function call<T> (run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    throw new DependencyError('redis', err)
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
    ['tollgateCreateSession', CREATE_SESSION, 0],
    ['tollgateRotate', ROTATE, 0],
    ['tollgateEndSession', END_SESSION, 0],
    ['tollgateEndSessions', END_SESSIONS, 0],
    ['tollgateListSessions', LIST_SESSIONS, 0]
  ])
  const base = (userId: string) => `${prefix}:{${userId}}`

  return {
    kind: 'redis',

    async createSession (s) {
      const created = await call(() => r.tollgateCreateSession(
        base(s.userId), s.sid, s.jti, s.now, s.expiresAt, idleTtl, s.userAgent ?? '', s.ip ?? '', absoluteTtl, Date.now() + LATE_AFTER_MS
      ))
      if (created !== 1) throw new DependencyError('redis', new Error('write arrived after its deadline'))
    },

    async rotate (q): Promise<RotateResult> {
      const [outcome, jti, expiresAt] = await call(() => r.tollgateRotate(
        base(q.userId), q.sid, q.jti, q.nextJti, q.now, idleTtl, reuseInterval, q.userAgent ?? '', q.ip ?? '', Date.now() + LATE_AFTER_MS
      ))
      if (outcome === 'late') throw new DependencyError('redis', new Error('write arrived after its deadline'))
      if (outcome === 'rotated' || outcome === 'grace') return { outcome, jti: jti as string, expiresAt: Number(expiresAt) }
      return { outcome: outcome as 'reuse' | 'unknown' | 'expired' }
    },

    isAccessAllowed: createRedisAccessCheck({ redis, prefix }),

    endSession: async (e) => await call(() => r.tollgateEndSession(
      base(e.userId), e.sid, e.accessJti ?? '', e.accessExpiresAt ?? 0
    )) === 1,

    endSessions: (e) => call(() => r.tollgateEndSessions(
      base(e.userId), e.except ?? '', Math.floor(e.now / 1000), absoluteTtl
    )).then(() => undefined),

    async listSessions (userId, now): Promise<SessionRecord[]> {
      const rows = await call(() => r.tollgateListSessions(base(userId), now))
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

    ping: () => call(() => r.ping()).then(() => undefined),

    // The client is its caller's to close.
    async close () {}
  }
}

import { createHash } from 'node:crypto'
import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import { tokenStoreContract } from '../src/token-store/contract.js'
import { createRedisTokenStore } from '../src/token-store/redis.js'
import { startRedisCluster } from './faults/redis-topologies.js'
import { bearer, build, claimsOf, login, redisClient, refresh, registerAndLogin, type TestContext } from './helper.js'

// Redis Cluster routes a script by the slot of the keys it declares (KEYS) and refuses keys of
// another slot. So every script call must declare its keys, and they must share one slot.

/** The part of a key Redis Cluster hashes: its hash tag, else the whole key. */
function slotSource (key: string): string {
  const open = key.indexOf('{')
  if (open === -1) return key
  const close = key.indexOf('}', open + 1)
  return close === -1 || close === open + 1 ? key : key.slice(open + 1, close)
}

function hashTag (key: string): string | undefined {
  const source = slotSource(key)
  return source === key ? undefined : source
}

interface ScriptCall { sha: string, keys: string[] }

/** Records every EVALSHA/EVAL sent by any ioredis client of this process until teardown. */
function recordScriptCalls (t: TestContext): ScriptCall[] {
  const calls: ScriptCall[] = []
  type Send = (this: Redis, command: { name: string, args: unknown[] }, ...rest: unknown[]) => unknown
  const proto = Redis.prototype as unknown as { sendCommand: Send }
  const original = proto.sendCommand
  proto.sendCommand = function (command, ...rest) {
    if (command.name === 'evalsha' || command.name === 'eval') {
      const [script, numberOfKeys, ...rest2] = command.args.map(String)
      const sha = command.name === 'eval' ? createHash('sha1').update(script as string).digest('hex') : script as string
      calls.push({ sha, keys: rest2.slice(0, Number(numberOfKeys)) })
    }
    return original.call(this, command, ...rest)
  }
  t.teardown(() => { proto.sendCommand = original })
  return calls
}

t.test('every script declares its keys, in one slot; every key has a hash tag', async t => {
  const calls = recordScriptCalls(t)
  const app = await build(t)
  const prefix = app.tollgate.config.REDIS_KEY_PREFIX

  const user = await registerAndLogin(app)
  const second = await login(app, user.email, user.password)
  const third = await login(app, user.email, user.password)
  const refreshed = await refresh(app, user.tokens.refresh_token)
  t.equal(refreshed.statusCode, 200, 'refresh')
  const tokens = refreshed.json()
  const sessions = await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(tokens.access_token) })
  t.equal(sessions.statusCode, 200, 'sessions')
  const ended = await app.inject({ method: 'DELETE', url: `/auth/sessions/${claimsOf(third.refresh_token).sid as string}`, headers: bearer(tokens.access_token) })
  t.equal(ended.statusCode, 204, 'end one session')
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(second.access_token) })).statusCode, 204, 'logout')
  const again = await login(app, user.email, user.password)
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(again.access_token) })).statusCode, 204, 'logout-all')
  const last = await login(app, user.email, user.password)
  t.equal((await app.inject({ method: 'DELETE', url: '/users/me', headers: bearer(last.access_token), payload: { password: user.password } })).statusCode, 204, 'delete')

  // CREATE_SESSION, ROTATE, IS_ACCESS_ALLOWED, END_SESSION, END_SESSIONS, LIST_SESSIONS, rate limit.
  t.ok(new Set(calls.map(c => c.sha)).size >= 7, 'all seven scripts ran')
  const rateLimit = `${prefix}:rl:`
  for (const call of calls) {
    t.ok(call.keys.length >= 1, `declares keys: ${call.keys.join(' ')}`)
    t.equal(new Set(call.keys.map(slotSource)).size, 1, `one slot: ${call.keys.join(' ')}`)
    if (call.keys[0]?.startsWith(rateLimit)) t.equal(call.keys.length, 1, 'rate limit: one key')
    t.ok(call.keys.every(key => hashTag(key) !== undefined), `hash tagged: ${call.keys.join(' ')}`)
  }

  // Before teardown deletes them: the keys the app wrote (SCAN, never KEYS).
  const redis = await redisClient(t)
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500)
    keys.push(...found)
    cursor = next
  } while (cursor !== '0')
  t.ok(keys.some(key => key.endsWith(':nbf')), 'logout-all left its not-before key')
  t.ok(keys.some(key => key.includes(':at-revoked:')), 'logout left a revoked access jti')
  t.ok(keys.some(key => key.startsWith(rateLimit)), 'rate-limit counters were written')
  for (const key of keys) {
    if (key.startsWith(rateLimit)) t.ok(hashTag(key), `${key} carries a hash tag`)
    else t.equal(hashTag(key), user.userId, `${key} is tagged with its user`)
  }
})

// A real 3-master cluster on loopback: the contract suite through an ioredis Cluster client.

t.test('the token-store contract on a 3-master Redis Cluster', async t => {
  const nodes = await startRedisCluster(t)
  let n = 0
  const cases = tokenStoreContract(async options => {
    const cluster = new Cluster(nodes.map(({ host, port }) => ({ host, port })), { lazyConnect: true, enableAutoPipelining: true })
    await cluster.connect()
    // Users spread over the three masters: a fresh prefix and random user ids per case.
    const store = createRedisTokenStore({ redis: cluster, prefix: `c${n++}`, ...options })
    return {
      ...store,
      async close () {
        await store.close()
        cluster.disconnect()
      }
    }
  })
  for (const c of cases) t.test(c.name, c.run)
})

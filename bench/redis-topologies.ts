/**
 * What the Redis topologies cost (issue 12): `node --import tsx bench/redis-topologies.ts`.
 *
 * - Revocations with and without REDIS_WAIT_REPLICAS=1, on a master with one replica behind three
 *   sentinels (all on 127.0.0.1): the store's endSession, alternating batches of each, sequential
 *   (latency) and 50 at once (throughput).
 * - The Redis connections one Tollgate client opens, per topology, counted with CLIENT LIST on each
 *   server before and after it connects and serves some traffic.
 * Every process it starts is killed at the end.
 */
import { randomUUID } from 'node:crypto'
import type { Config } from '../src/config.js'
import { closeRedisClient, createRedisClient, waitForFirstConnection, type RedisSettings } from '../src/redis-client.js'
import type { TokenStore } from '../src/token-store/index.js'
import { createRedisTokenStore } from '../src/token-store/redis.js'
import { withReplicaAcknowledgement } from '../src/token-store/replica-acknowledged.js'
import { ask, startRedisCluster, startSentinels, type Node } from '../test/faults/redis-topologies.js'
import { median, quantile, round } from './lib/stats.js'

const ROUNDS = 6
const PER_BATCH = 500
const CONCURRENCY = 50

const teardowns: Array<() => unknown> = []
const t = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }

const STORE_OPTIONS = { idleTtl: 600_000, reuseInterval: 0, absoluteTtl: 3_600_000 }
const settings = (over: Partial<Config>): RedisSettings => ({ REDIS_TLS: false, ...over } as RedisSettings)

async function clientsOn (nodes: Array<Node & { password?: string }>): Promise<number[]> {
  return Promise.all(nodes.map(async node => String(await ask(node, 'CLIENT', 'LIST')).trim().split('\n').length - 1))
}

/** Creates `count` sessions, then ends them `concurrency` at a time: each end's latency, and the seconds the ends took. */
async function endSessions (store: TokenStore, count: number, concurrency: number): Promise<{ latencies: number[], seconds: number }> {
  const userId = randomUUID()
  const sids = Array.from({ length: count }, () => randomUUID())
  const now = Date.now()
  for (const sid of sids) await store.createSession({ userId, sid, jti: randomUUID(), now, expiresAt: now + 3_600_000, userAgent: null, ip: null, roles: [] })
  const latencies: number[] = []
  const started = performance.now()
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < sids.length) {
      const sid = sids[next++] as string
      const started = performance.now()
      await store.endSession({ userId, sid, now: Date.now() })
      latencies.push(performance.now() - started)
    }
  }))
  return { latencies, seconds: (performance.now() - started) / 1000 }
}

async function main () {
  const setup = await startSentinels(t)
  const secured = (node: Node) => ({ ...node, password: setup.password })
  const before = await clientsOn([setup.master, ...setup.sentinels].map(secured))
  const client = createRedisClient(settings({
    REDIS_SENTINELS: setup.sentinels.map(s => `${s.host}:${s.port}`).join(','),
    REDIS_SENTINEL_NAME: setup.name,
    REDIS_PASSWORD: setup.password,
    REDIS_SENTINEL_PASSWORD: setup.password
  }), () => {})!
  teardowns.push(() => closeRedisClient(client))
  await waitForFirstConnection(client)
  const prefix = `bench-${randomUUID()}`
  const plain = createRedisTokenStore({ redis: client, prefix, ...STORE_OPTIONS })
  // As the plugin does: revocations and their WAIT on a connection of their own.
  const revocationClient = client.duplicate()
  teardowns.push(() => closeRedisClient(revocationClient))
  await waitForFirstConnection(revocationClient)
  const waiting = withReplicaAcknowledgement(plain, createRedisTokenStore({ redis: revocationClient, prefix, ...STORE_OPTIONS }), revocationClient, 1)

  console.log('Revocation (endSession) latency, ms, master + 1 replica + 3 sentinels on loopback')
  for (const concurrency of [1, CONCURRENCY]) {
    const results = { plain: [] as number[], wait: [] as number[], plainRate: [] as number[], waitRate: [] as number[] }
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, store] of [['plain', plain], ['wait', waiting]] as const) {
        const { latencies, seconds } = await endSessions(store, PER_BATCH, concurrency)
        results[name].push(...latencies)
        results[`${name}Rate`].push(PER_BATCH / seconds)
      }
    }
    for (const name of ['plain', 'wait'] as const) {
      const sorted = [...results[name]].sort((a, b) => a - b)
      console.log(`  concurrency ${concurrency}, ${name === 'plain' ? 'REDIS_WAIT_REPLICAS=0' : 'REDIS_WAIT_REPLICAS=1'}: p50 ${round(quantile(sorted, 0.5), 3)}, p99 ${round(quantile(sorted, 0.99), 3)}, ${Math.round(median(results[`${name}Rate`]))} revocations/s (median of ${ROUNDS} batches of ${PER_BATCH})`)
    }
  }
  const after = await clientsOn([setup.master, ...setup.sentinels].map(secured))
  console.log(`Sentinel: connections opened by one client: master +${(after[0] ?? 0) - (before[0] ?? 0)}, sentinels ${after.slice(1).map((n, i) => `+${n - (before[i + 1] ?? 0)}`).join(' ')}`)

  const nodes = await startRedisCluster(t)
  const beforeCluster = await clientsOn(nodes)
  const cluster = createRedisClient(settings({ REDIS_CLUSTER_NODES: nodes.map(n => `${n.host}:${n.port}`).join(',') }), () => {})!
  teardowns.push(() => closeRedisClient(cluster))
  await waitForFirstConnection(cluster)
  const store = createRedisTokenStore({ redis: cluster, prefix: `bench-${randomUUID()}`, ...STORE_OPTIONS })
  for (let i = 0; i < 20; i++) await endSessions(store, 10, 5)
  await store.ping()
  const afterCluster = await clientsOn(nodes)
  console.log(`Cluster (3 masters): connections opened by one client: ${afterCluster.map((n, i) => `+${n - (beforeCluster[i] ?? 0)}`).join(' ')}`)
}

try {
  await main()
} finally {
  for (const teardown of teardowns.reverse()) await teardown()
}

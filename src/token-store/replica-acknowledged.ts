import { DependencyError } from '../errors.js'
import type { RedisClient } from '../redis-client.js'
import type { TokenStore } from './index.js'

/** Less than the store's 1 s deadline per call, so a missing replica still answers 503 in time. */
export const WAIT_TIMEOUT_MS = 500

/**
 * A Redis token store whose revocations (ending one session or all of them) are acknowledged only
 * once `replicas` replicas hold them: Redis WAIT, sent on the same connection right after the
 * write, counts the replicas that have every write made on it so far. Fewer within WAIT_TIMEOUT_MS
 * is a 503: the revocation is on the master, but a failover now could undo it, so the client must
 * not take it as done. Retrying is safe (ending an ended session changes nothing, and waits again).
 * For one Redis or the master behind Sentinel: a Cluster client would send WAIT to any master.
 *
 * The revocations go through `revocations`, a store on a connection of their own (`redis`): WAIT
 * blocks the connection it is sent on, and every other request's command would wait behind it.
 */
export function withReplicaAcknowledgement (store: TokenStore, revocations: TokenStore, redis: RedisClient, replicas: number): TokenStore {
  async function acknowledged (): Promise<void> {
    let count: unknown
    try {
      count = await redis.call('WAIT', replicas, WAIT_TIMEOUT_MS)
    } catch (err) {
      throw new DependencyError('redis', err)
    }
    if (typeof count !== 'number' || count < replicas) {
      throw new DependencyError('redis', new Error(`WAIT: ${String(count)} of ${replicas} replicas acknowledged the revocation`))
    }
  }
  return {
    ...store,
    async endSession (end) {
      const ended = await revocations.endSession(end)
      await acknowledged()
      return ended
    },
    async endSessions (end) {
      await revocations.endSessions(end)
      await acknowledged()
    },
    async close () {
      await revocations.close()
      await store.close()
    }
  }
}

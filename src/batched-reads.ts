type Waiter<V> = { resolve: (value: V | undefined) => void, reject: (err: unknown) => void }

/**
 * Reads by key that arrive in the same event-loop turn go out as one: under load, one batch of
 * Redis replies resumes many requests at once, and each would otherwise send PostgreSQL a query of
 * its own (a socket write, a backend woken up). ioredis batches its commands the same way
 * (auto-pipelining, sent with setImmediate). Nothing is cached: every read is answered by a query
 * sent after it was asked for. A failed query fails every read of its batch.
 */
export function batchedReads<V> (readMany: (keys: string[]) => Promise<Map<string, V>>, maxBatch: number): (key: string) => Promise<V | undefined> {
  let open: Map<string, Array<Waiter<V>>> | null = null

  function send (batch: Map<string, Array<Waiter<V>>>) {
    if (open === batch) open = null
    readMany([...batch.keys()]).then(values => {
      for (const [key, waiters] of batch) for (const w of waiters) w.resolve(values.get(key))
    }, err => {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err)
    })
  }

  return function read (key) {
    return new Promise((resolve, reject) => {
      let batch = open
      if (batch === null) {
        const fresh = new Map<string, Array<Waiter<V>>>()
        open = batch = fresh
        setImmediate(() => { if (open === fresh) send(fresh) })
      }
      const waiters = batch.get(key)
      if (waiters) waiters.push({ resolve, reject })
      else batch.set(key, [{ resolve, reject }])
      // A full batch goes at once; the next read opens another.
      if (batch.size >= maxBatch) send(batch)
    })
  }
}

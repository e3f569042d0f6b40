// The batching of reads by key (src/batched-reads.ts), which GET /users/me's user reads go through.
import t from 'tap'
import { batchedReads } from '../src/batched-reads.js'

const nextTurn = () => new Promise(resolve => setImmediate(resolve))

function recordingReader (maxBatch: number, fail?: Error) {
  const batches: string[][] = []
  const read = batchedReads(async (keys: string[]) => {
    batches.push(keys)
    if (fail) throw fail
    return new Map(keys.filter(k => !k.startsWith('missing')).map(k => [k, `value of ${k}`]))
  }, maxBatch)
  return { read, batches }
}

t.test('reads of one turn go out as one batch, each answered with its own value', async t => {
  const { read, batches } = recordingReader(100)
  const answers = await Promise.all(['a', 'b', 'a', 'missing-c', 'b'].map(read))
  t.same(answers, ['value of a', 'value of b', 'value of a', undefined, 'value of b'])
  t.same(batches, [['a', 'b', 'missing-c']], 'one batch, each key once')
})

t.test('reads of different turns go out separately: nothing is cached', async t => {
  const { read, batches } = recordingReader(100)
  t.equal(await read('a'), 'value of a')
  await nextTurn()
  t.equal(await read('a'), 'value of a')
  t.same(batches, [['a'], ['a']])
})

t.test('a full batch goes at once, and the rest in the next', async t => {
  const { read, batches } = recordingReader(3)
  const answers = await Promise.all(['k1', 'k2', 'k3', 'k4', 'k5'].map(read))
  t.same(answers, ['k1', 'k2', 'k3', 'k4', 'k5'].map(k => `value of ${k}`))
  t.same(batches, [['k1', 'k2', 'k3'], ['k4', 'k5']])
  await nextTurn()
  t.same(batches.length, 2, 'no empty batch is sent afterwards')
})

t.test('a failed batch fails each of its reads, and the next batch is independent', async t => {
  const failing = recordingReader(100, new Error('database away'))
  const results = await Promise.allSettled(['a', 'b', 'a'].map(failing.read))
  t.same(results.map(r => r.status), ['rejected', 'rejected', 'rejected'])
  t.same(results.map(r => (r as PromiseRejectedResult).reason.message), ['database away', 'database away', 'database away'])

  const { read } = recordingReader(100)
  t.equal(await read('a'), 'value of a')
})

import { createInterface } from 'node:readline'
import { buildServer } from '../../src/server.js'
import { deleteRedisPrefix, testConfig } from '../helper.js'

// One server instance of concurrent-migrations.test.ts, as its own process. Once loaded it prints
// `loaded`; then, for each line `boot <postgres URL>` on its standard input, it builds the
// standalone server on that database, waits for ready(), closes it and prints one JSON line
// `{ ok, ms, error? }`. The test writes the line to every instance at once: they start together.
const lines = createInterface({ input: process.stdin })
process.stdout.write('loaded\n')
for await (const line of lines) {
  const url = /^boot (\S+)$/.exec(line)?.[1]
  if (!url) continue
  const started = performance.now()
  const config = testConfig({ DATABASE_URL: url })
  let result: { ok: boolean, ms: number, error?: string }
  try {
    const app = await buildServer(config)
    try {
      await app.ready()
      result = { ok: true, ms: Math.round(performance.now() - started) }
    } finally {
      await app.close()
    }
  } catch (err) {
    result = { ok: false, ms: Math.round(performance.now() - started), error: err instanceof Error ? err.message : String(err) }
  }
  await deleteRedisPrefix(config.REDIS_KEY_PREFIX)
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

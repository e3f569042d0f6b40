// The keys the embedded default generates into DATA_DIR/keys: kept across restarts, and a file
// found damaged (emptied by a crash, cut short by hand) stops the start with its path, never used
// as it is (store review).
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import tollgate, { type TollgateOptions } from '../plugins/tollgate.js'
import { loadKeys } from '../src/keys.js'
import { pluginOptions, tempDir } from './helper.js'

const settings = (dataDir: string) => ({ ACCESS_TOKEN_ALG: 'EdDSA' as const, DATA_DIR: dataDir })

t.test('generated once, then the same keys at every start', async t => {
  const dir = await tempDir(t)
  const first = await loadKeys(settings(dir))
  t.equal(first.generated.length, 2, 'an Ed25519 key and a refresh secret')
  const again = await loadKeys(settings(dir))
  t.same(again.generated, [])
  t.equal(again.refreshSecret, first.refreshSecret)
  t.equal(again.access.kid, first.access.kid)
})

t.test('a refresh secret file under 32 characters is refused, with its path', async t => {
  const dir = await tempDir(t)
  await mkdir(join(dir, 'keys'))
  const path = join(dir, 'keys', 'refresh-hs256.secret')
  for (const content of ['x', '']) {
    await writeFile(path, content)
    await t.rejects(loadKeys(settings(dir)), { message: `${path}: a secret of ${content.length} characters, 32 or more are needed; delete it to generate a new one (every token signed with it stops working)` }, JSON.stringify(content))
  }
})

t.test('a damaged access key file is refused, with its path', async t => {
  const dir = await tempDir(t)
  await mkdir(join(dir, 'keys'))
  const path = join(dir, 'keys', 'access-ed25519.pem')
  await writeFile(path, '-----BEGIN PRIVATE KEY-----\nMC4CAQ')
  await t.rejects(loadKeys(settings(dir)), { message: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .+; delete it to generate a new one`) })
})

t.test('keys from DATA_DIR beside a shared token store: a warning at every start, since each instance would have its own', async t => {
  const dataDir = await tempDir(t)
  const shared = await pluginOptions(t)
  async function warningsOfAStart (options: TollgateOptions): Promise<string[]> {
    const lines: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: new Writable({ write (chunk, _enc, done) { lines.push(chunk.toString()); done() } }) } })
    await app.register(tollgate, { ...options, dataDir, accessTokenPrivateKey: undefined, refreshTokenSecret: undefined })
    await app.ready()
    await app.close()
    return lines.map(line => (JSON.parse(line) as { msg: string }).msg)
  }
  const first = await warningsOfAStart(shared)
  t.ok(first.some(msg => msg.startsWith('generated signing keys')), 'the first start generates them, and says so')
  const again = await warningsOfAStart(shared)
  t.ok(again.some(msg => msg.startsWith('signing keys read from DATA_DIR: every instance that shares this token store needs the same keys')), 'a later start with Redis warns')
  const embedded = await warningsOfAStart({ databaseUrl: shared.databaseUrl })
  t.notOk(embedded.some(msg => msg.includes('signing keys')), 'with the in-process store (one process) it does not')
})

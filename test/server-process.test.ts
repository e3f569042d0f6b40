import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from './helper.js'

// `npm start` as a person runs it: no database, Redis or key variables, only a temp DATA_DIR.
const ROOT = join(import.meta.dirname, '..')
const START_TIMEOUT_MS = 90_000

interface Running { child: ChildProcess, url: string, output: () => string }

/** `npm start`: builds what changed, then runs the build. */
async function start (dataDir: string): Promise<Running> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info' }
  const child = spawn('npm', ['start', '--silent'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', chunk => { output += chunk })
  child.stderr?.on('data', chunk => { output += chunk })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), START_TIMEOUT_MS)
    const onData = () => {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1] as string)
      }
    }
    child.stdout?.on('data', onData)
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${output}`)) })
  })
  return { child, url, output: () => output }
}

async function stop ({ child }: Running) {
  if (child.exitCode !== null) return
  const exited = once(child, 'exit')
  process.kill(-(child.pid as number), 'SIGTERM')
  await exited
}

async function post (url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json().catch(() => null) as Record<string, string> }
}

t.test('npm start with nothing configured: register, log in, restart, log in again', async t => {
  const dataDir = await tempDir(t)
  let server = await start(dataDir)
  t.teardown(() => stop(server))
  t.match(server.output(), /in-process token store serves this one process only/, 'warns that the store is single-process')

  const account = { email: 'first@example.com', password: 'correct horse battery staple' }
  t.equal((await post(`${server.url}/auth/register`, account)).status, 201)
  t.match(server.output(), /API docs at http:\/\/127\.0\.0\.1:\d+\/docs/, 'logs the docs URL')
  const first = await post(`${server.url}/auth/login`, account)
  t.equal(first.status, 200)

  const keyFile = await stat(join(dataDir, 'keys', 'access-ed25519.pem'))
  t.equal(keyFile.mode & 0o777, 0o600, 'the generated key is readable by its owner only')
  t.equal((await stat(join(dataDir, 'keys', 'refresh-hs256.secret'))).mode & 0o777, 0o600)

  await stop(server)
  // A restart with unchanged sources builds nothing (an incremental build finds dist up to date).
  const built = (await stat(join(ROOT, 'dist', 'src', 'server.js'))).mtimeMs
  server = await start(dataDir)
  t.notMatch(server.output(), /generated signing keys/, 'the second start reuses the keys')
  t.equal((await stat(join(ROOT, 'dist', 'src', 'server.js'))).mtimeMs, built, 'npm start did not recompile unchanged sources')

  const again = await post(`${server.url}/auth/login`, account)
  t.equal(again.status, 200, 'the account survived the restart')
  const me = await fetch(`${server.url}/users/me`, { headers: { authorization: `Bearer ${first.body.access_token}` } })
  t.equal(me.status, 200, 'an access token from before the restart still works')
  const rotated = await post(`${server.url}/auth/refresh`, { refresh_token: first.body.refresh_token })
  t.equal(rotated.status, 200, 'a refresh token from before the restart still rotates')
  const ready = await fetch(`${server.url}/health/ready`)
  t.same((await ready.json() as Record<string, unknown>).backends, { database: 'pglite', token_store: 'memory' })
})

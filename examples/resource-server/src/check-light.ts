import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// A resource server pays only for verifying: importing 'tollgate/verify' must not load the ORM,
// the embedded database or argon2. Each import runs in a fresh process that records every module
// it loads; importing 'tollgate' is the control that shows the recording sees them.

const HEAVY = ['@mikro-orm/', '@electric-sql/pglite', 'mikro-orm-pglite', '@node-rs/argon2']
const EXAMPLE_DIR = fileURLToPath(new URL('..', import.meta.url))
const RECORDER = new URL('./record-loads.js', import.meta.url).href
const TIMEOUT_MS = 30_000

/** Every module URL a fresh `node` loads for `import(specifier)`, resolved from this example. */
function modulesLoadedBy (specifier: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-check-light-'))
  const logFile = join(dir, 'loads.txt')
  try {
    const child = spawnSync(process.execPath, ['--import', RECORDER, '--input-type=module', '-e', `await import(${JSON.stringify(specifier)})`], {
      cwd: EXAMPLE_DIR,
      env: { ...process.env, LOAD_LOG: logFile },
      encoding: 'utf8',
      timeout: TIMEOUT_MS
    })
    assert.equal(child.status, 0, `import('${specifier}') failed: ${child.error?.message ?? child.stderr}`)
    return readFileSync(logFile, 'utf8').split('\n').filter(Boolean)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The heavy packages among the loaded modules. */
function heavyPackagesIn (urls: string[]): string[] {
  return HEAVY.filter(name => urls.some(url => url.includes(`/node_modules/${name}`)))
}

function main () {
  const verify = modulesLoadedBy('tollgate/verify')
  assert.ok(verify.some(url => url.endsWith('/node_modules/tollgate/dist/plugins/verify.js')), 'the recording missed tollgate/verify itself')
  assert.deepEqual(heavyPackagesIn(verify), [], 'importing tollgate/verify loads heavy packages')
  console.log(`ok - tollgate/verify loads ${verify.length} modules, none of ${HEAVY.join(', ')}`)

  const full = modulesLoadedBy('tollgate')
  assert.deepEqual(heavyPackagesIn(full), HEAVY, 'control: importing tollgate should load every heavy package')
  console.log(`ok - control: tollgate loads ${full.length} modules, among them ${HEAVY.join(', ')}`)
}

try {
  main()
} catch (err) {
  console.error('not ok -', err)
  process.exitCode = 1
}

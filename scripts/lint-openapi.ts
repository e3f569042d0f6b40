/*
 * Lints the OpenAPI document the app serves at /docs/json with Redocly CLI (recommended) and
 * Spectral (spectral:oas): exits non-zero unless both report 0 errors and 0 warnings.
 * `npm run lint:openapi`; needs neither PostgreSQL, Redis nor the internet.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig, type ConfigInput } from '../src/config.js'
import { buildServer } from '../src/server.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = (name: string) => join(root, 'node_modules', '.bin', name)

/** The document exactly as the standalone server serves it, on the embedded default. */
async function openApiDocument (dataDir: string, settings: ConfigInput): Promise<unknown> {
  const config = loadConfig({
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    // A client, so that the optional introspection endpoint exists and is linted too.
    INTROSPECTION_CLIENTS: `openapi-lint:${randomBytes(24).toString('base64url')}`,
    ...settings
  })
  const app = await buildServer(config)
  try {
    await app.ready()
    // Over HTTP: app.swagger() is decorated inside Tollgate's encapsulated scope, not on the root.
    const res = await app.inject({ method: 'GET', url: '/docs/json' })
    if (res.statusCode !== 200) throw new Error(`GET /docs/json answered ${res.statusCode}: ${res.body}`)
    return res.json()
  } finally {
    await app.close()
  }
}

interface RedoclyReport {
  totals: { errors: number, warnings: number, ignored: number }
  problems: Array<{ ruleId: string, severity: string, message: string, location: Array<{ pointer?: string }> }>
}

/** Redocly fails on errors only, so its JSON report's totals decide; the problems are printed one a line. */
function redocly (file: string): boolean {
  const run = spawnSync(bin('redocly'), ['lint', file, '--config', join(root, 'redocly.yaml'), '--format', 'json'], {
    cwd: root,
    encoding: 'utf8',
    // No telemetry, no update check: the lint must work offline.
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_NOTIFICATIONS: 'true', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' }
  })
  let report: RedoclyReport
  try {
    report = JSON.parse(run.stdout)
  } catch {
    process.stdout.write(run.stdout)
    process.stderr.write(run.stderr)
    console.error(`redocly: no JSON report (exit ${run.status ?? run.signal})`)
    return false
  }
  for (const problem of report.problems) {
    console.log(`  ${problem.severity} ${problem.ruleId} ${problem.location[0]?.pointer ?? ''}: ${problem.message}`)
  }
  const { errors, warnings } = report.totals
  console.log(`redocly: ${errors} errors, ${warnings} warnings`)
  return run.status === 0 && errors === 0 && warnings === 0
}

function spectral (file: string): boolean {
  const run = spawnSync(bin('spectral'), ['lint', file, '--ruleset', join(root, '.spectral.yaml'), '--fail-severity=warn'], {
    cwd: root,
    stdio: 'inherit'
  })
  console.log(`spectral: ${run.status === 0 ? 'no problems' : `failed (exit ${run.status ?? run.signal})`}`)
  return run.status === 0
}

// The document differs by setting: cookie mode (REFRESH_COOKIE) adds security schemes, headers and responses.
const VARIANTS: Array<[string, ConfigInput]> = [['default', {}], ['cookie mode', { REFRESH_COOKIE: true }]]

const dir = await mkdtemp(join(tmpdir(), 'tollgate-openapi-'))
try {
  const results: boolean[] = []
  for (const [name, settings] of VARIANTS) {
    console.log(`${name}:`)
    const file = join(dir, `openapi-${results.length}.json`)
    await writeFile(file, JSON.stringify(await openApiDocument(join(dir, 'data'), settings), null, 2))
    // Both run whatever the first says, so one pass shows every problem.
    results.push(redocly(file), spectral(file))
  }
  process.exitCode = results.every(Boolean) ? 0 : 1
} finally {
  await rm(dir, { recursive: true, force: true })
}

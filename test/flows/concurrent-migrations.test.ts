import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import pg from 'pg'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { MIGRATION_LOCK_KEY, MigrationError, openDatabase } from '../../src/database.js'
import { migrationsList } from '../../src/migrations/index.js'
import { OptionsError, configFromOptions } from '../../src/options.js'
import { INTERNAL_ERROR_BODY } from '../fixtures.js'
import { build, createTestDatabase, REDIS_URL, tempDir, testKeys } from '../helper.js'

// Issue 12: replicas rolled out together all migrate at start. They take turns (a PostgreSQL
// advisory lock), so each boots and the schema is migrated exactly once.
const ROOT = join(import.meta.dirname, '..', '..')
const INSTANCES = 3
const ROUNDS = 8
const MIGRATIONS = migrationsList.map(m => m.name).sort()

interface Instance { child: ChildProcess, next: () => Promise<string> }

/** A server process (migration-instance.ts), loaded and waiting for `boot <url>`. */
async function startInstance (): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'migration-instance.ts')], {
    cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['pipe', 'pipe', 'inherit']
  })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const next = async () => {
    const { value, done } = await lines.next()
    if (done) throw new Error(`instance ${child.pid} exited (code ${child.exitCode})`)
    return value as string
  }
  return { child, next }
}

async function query<T extends pg.QueryResultRow> (url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(sql, values)).rows
  } finally {
    await client.end()
  }
}

const appliedMigrations = async (url: string) =>
  (await query<{ name: string }>(url, 'select name from mikro_orm_migrations order by name')).map(r => r.name)

const tableExists = async (url: string, table: string) =>
  (await query<{ t: string | null }>(url, 'select to_regclass($1)::text as t', [table]))[0]?.t !== null

t.test(`${INSTANCES} server processes released together on an empty database, ${ROUNDS} rounds: all boot, one migrates`, async t => {
  const instances = await Promise.all(Array.from({ length: INSTANCES }, startInstance))
  t.teardown(async () => {
    await Promise.all(instances.map(async ({ child }) => {
      if (child.exitCode !== null) return
      const exited = once(child, 'exit')
      child.stdin?.end()
      await exited
    }))
  })
  for (const instance of instances) t.equal(await instance.next(), 'loaded')

  for (let round = 1; round <= ROUNDS; round++) {
    const url = await createTestDatabase(t)
    // Loaded already, the instances reach their DDL within milliseconds of each other.
    for (const { child } of instances) child.stdin?.write(`boot ${url}\n`)
    const results = await Promise.all(instances.map(async i => JSON.parse(await i.next()) as { ok: boolean, ms: number, error?: string }))
    t.same(results.map(r => r.error ?? 'ok'), Array(INSTANCES).fill('ok'), `round ${round}: every instance booted (${results.map(r => `${r.ms} ms`).join(', ')})`)
    t.same(await appliedMigrations(url), MIGRATIONS, `round ${round}: each migration recorded once`)
    t.ok(await tableExists(url, 'users'), `round ${round}: the users table exists`)
  }
})

t.test('MIGRATE_AT_START=false: the server boots without migrating, not ready; npm run migrate then migrates', async t => {
  const url = await createTestDatabase(t)
  const logs: string[] = []
  const logStream = new Writable({ write (chunk, _enc, done) { logs.push(chunk.toString()); done() } })
  const app = await build(t, { config: { DATABASE_URL: url, MIGRATE_AT_START: 'false', LOG_LEVEL: 'warn' }, logStream })
  t.equal(app.tollgate.config.MIGRATE_AT_START, false)
  t.notOk(await tableExists(url, 'users'), 'no users table')
  t.notOk(await tableExists(url, 'mikro_orm_migrations'), 'no migrations table')
  const warning = logs.map(line => JSON.parse(line) as { msg: string, pending?: string[] }).find(line => /lacks migrations/.test(line.msg))
  t.same(warning?.pending, MIGRATIONS, 'the boot warns, naming the pending migrations')

  // A load balancer must not send traffic to it yet.
  const notReady = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(notReady.statusCode, 503, 'not ready while migrations are pending')
  t.equal(notReady.headers['retry-after'], '5')
  t.same(notReady.json().checks, { database: 'migrations_pending', token_store: 'up' })
  t.equal(notReady.json().status, 'unavailable')
  t.notOk(await tableExists(url, 'mikro_orm_migrations'), 'the probe created nothing')

  // Until the migrations run, a request that reaches the users' table fails as an internal error.
  const account = { email: 'early@example.com', password: 'correct horse battery staple' }
  const early = await app.inject({ method: 'POST', url: '/auth/register', payload: account })
  t.equal(early.statusCode, 500, `before migrating, register answers 500: ${early.body}`)
  t.strictSame(early.json(), INTERNAL_ERROR_BODY, 'the error is masked: no SQL, no table name')

  const env = { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: url }
  const migrate = spawn('npm', ['run', 'migrate', '--silent'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  migrate.stdout.on('data', chunk => { output += chunk })
  migrate.stderr.on('data', chunk => { output += chunk })
  const [code] = await once(migrate, 'exit')
  t.equal(code, 0, `npm run migrate succeeds: ${output}`)
  t.match(output, `applied: ${MIGRATIONS.join(', ')}`)
  t.same(await appliedMigrations(url), MIGRATIONS)

  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200, 'ready once migrated, without a restart')
  t.same(ready.json().checks, { database: 'up', token_store: 'up' })

  const registered = await app.inject({ method: 'POST', url: '/auth/register', payload: account })
  t.equal(registered.statusCode, 201, 'after npm run migrate, the running server registers')
})

t.test('a database migrated by an older version (some migrations applied) is not ready either', async t => {
  const url = await createTestDatabase(t)
  const older = migrationsList[0]!.name
  const database = await openDatabase({ url })
  try {
    await database.orm.getMigrator().up({ to: older })
    t.same(await database.pendingMigrations(), MIGRATIONS.filter(name => name !== older))
  } finally {
    await database.close()
  }
  const app = await build(t, { config: { DATABASE_URL: url, MIGRATE_AT_START: 'false' } })
  const notReady = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(notReady.statusCode, 503)
  t.equal(notReady.json().checks.database, 'migrations_pending')
})

t.test('the embedded default (PGlite) lists pending migrations too', async t => {
  const database = await openDatabase({ pgliteDir: join(await tempDir(t), 'pglite') })
  t.teardown(() => database.close())
  t.same(await database.pendingMigrations(), MIGRATIONS, 'a fresh database lacks every migration')
  await database.migrate()
  t.same(await database.pendingMigrations(), [], 'none once migrated')
})

t.test('MIGRATE_AT_START and migrateAtStart accept true or false only', async t => {
  t.equal(loadConfig({}).MIGRATE_AT_START, true, 'default true')
  t.equal(loadConfig({ MIGRATE_AT_START: 'false' }).MIGRATE_AT_START, false)
  t.equal(loadConfig({ MIGRATE_AT_START: 'true' }).MIGRATE_AT_START, true)
  for (const value of ['0', '1', 'yes', 'no', 'FALSE']) {
    t.throws(() => loadConfig({ MIGRATE_AT_START: value }), { message: /MIGRATE_AT_START: expected true or false/ }, value)
  }
  t.equal(configFromOptions({ migrateAtStart: false }).MIGRATE_AT_START, false)
  t.equal(configFromOptions({}).MIGRATE_AT_START, true)
  t.throws(() => configFromOptions({ migrateAtStart: 'false' as unknown as boolean }), new OptionsError(['migrateAtStart: expected true or false']))
})

t.test('a migration waits for the lock, bounded: a timeout is a clear MigrationError', async t => {
  const url = await createTestDatabase(t)
  const holder = new pg.Client({ connectionString: url })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('select pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY])

  const database = await openDatabase({ url })
  t.teardown(() => database.close())
  const started = Date.now()
  const error = await database.migrate({ lockTimeoutMs: 400 }).catch((err: unknown) => err)
  t.type(error, MigrationError)
  t.match((error as Error).message, /^timed out after 0 s waiting for the migration lock \(pg_advisory_lock \d+\): another instance/)
  t.ok(Date.now() - started >= 400, 'it waited')
  t.notOk(await tableExists(url, 'mikro_orm_migrations'), 'nothing ran')

  // Released within the wait: the migration proceeds.
  setTimeout(() => { holder.query('select pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]).catch(() => {}) }, 300)
  t.same((await database.migrate({ lockTimeoutMs: 5000 })).sort(), MIGRATIONS)
  t.same(await database.migrate(), [], 'again: nothing to do')
  const held = await query<{ n: number }>(url, "select count(*)::int as n from pg_locks l join pg_database d on d.oid = l.database where l.locktype = 'advisory' and d.datname = current_database()")
  t.equal(held[0]?.n, 0, 'the lock is released')
})

t.test('the standalone server whose migration fails logs it and exits with code 1', async t => {
  const url = await createTestDatabase(t)
  // A table in the way: the first migration's `create table "users"` fails (42P07).
  await query(url, 'create table users (id int)')
  const keys = testKeys()
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: url,
    REDIS_URL,
    REDIS_KEY_PREFIX: `t-mig-${process.pid}`,
    DATA_DIR: await tempDir(t),
    PORT: '0',
    ACCESS_TOKEN_PRIVATE_KEY: keys.accessPrivateKey,
    REFRESH_TOKEN_SECRET: keys.refreshSecret
  }
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  child.stderr.on('data', chunk => { output += chunk })
  const [code] = await once(child, 'exit')
  t.equal(code, 1, 'exit code 1')
  const fatal = output.split('\n').filter(Boolean).map(line => JSON.parse(line) as { level: number, msg: string }).find(l => l.level === 60)
  t.match(fatal?.msg, /^server could not start: database migrations failed: Migration Migration\w+ \(up\) failed: relation "users" already exists \(42P07\)$/, 'one fatal log line says why')
  t.notMatch(output, /\n\s+at /, 'no raw stack dump')
  t.notMatch(output, /Server listening/)
})

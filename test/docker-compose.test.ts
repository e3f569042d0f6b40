import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { ConfigSchema, loadConfig, type ConfigInput } from '../src/config.js'
import { ask, freePort, startProcess, until } from './faults/redis-topologies.js'
import { tempDir } from './helper.js'

const root = new URL('..', import.meta.url)
const read = (file: string) => readFile(new URL(file, root), 'utf8')

interface Service { image?: string, command?: string | string[], environment?: Record<string, unknown> | string[] }

/** A service's environment as a map, whichever of the two Compose forms it uses. */
function environmentOf (service: Service | undefined): Record<string, string> {
  const environment = service?.environment ?? {}
  if (Array.isArray(environment)) {
    return Object.fromEntries(environment.map(entry => {
      const at = entry.indexOf('=')
      return at < 0 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)]
    }))
  }
  return Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, value === null ? '' : String(value)]))
}

/** `${VAR:-default}` (and `${VAR-default}`) become their default, as Compose does with VAR unset. */
const withDefaults = (value: string) => value.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}/g, '$1')

t.test('docker-compose.yml runs the app, PostgreSQL 16 and Redis 7 with AOF', async t => {
  const compose = parse(await read('docker-compose.yml')) as { services?: Record<string, Service> }
  const services = compose.services ?? {}
  t.ok(services.app, 'an app service')
  t.equal(services.postgres?.image, 'postgres:16')
  t.equal(services.redis?.image, 'redis:7')

  // The image's first start runs a socket-only server for its init scripts: readiness must be asked over TCP.
  const postgresCheck = (services.postgres as { healthcheck?: { test?: string[] } } | undefined)?.healthcheck?.test ?? []
  t.match(postgresCheck.at(-1), /^pg_isready -h 127\.0\.0\.1 /, `postgres is healthy once it answers over TCP: ${JSON.stringify(postgresCheck)}`)
  // The same check, against this machine's PostgreSQL (user and database as here).
  const check = String(postgresCheck.at(-1)).replace('-U tollgate -d tollgate', '-U root -d postgres')
  await t.resolves(promisify(execFile)('sh', ['-c', check]), `${check} succeeds against a running server`)

  const command = services.redis?.command
  const args = Array.isArray(command) ? command.map(String) : String(command ?? '').split(/\s+/)
  const at = args.indexOf('--appendonly')
  t.ok(at >= 0 && args[at + 1] === 'yes', `redis runs with --appendonly yes: ${JSON.stringify(command)}`)

  t.test('every app variable is a config variable, and the defaults make a valid config', async t => {
    const environment = environmentOf(services.app)
    const names = Object.keys(environment)
    t.ok(names.length > 0, 'the app is configured through its environment')
    const known = Object.keys(ConfigSchema.properties)
    for (const name of names) t.ok(known.includes(name), `${name} is in ConfigSchema`)

    const values = Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, withDefaults(value)]))
    for (const [key, value] of Object.entries(values)) t.notMatch(value, /\$\{/, `${key} has no unresolved variable`)
    t.doesNotThrow(() => loadConfig(values as ConfigInput), 'loadConfig accepts them')
    const config = loadConfig(values as ConfigInput)
    t.match(config.DATABASE_URL, /^postgres(ql)?:\/\/.*@postgres[:/]/, 'the postgres service')
    t.match(config.REDIS_URL, /^redis:\/\/redis[:/]/, 'the redis service')
  })
})

t.test('the Dockerfile builds in stages and runs as a user other than root', async t => {
  const dockerfile = await read('Dockerfile')
  const lines = dockerfile.split('\n').map(line => line.trim()).filter(line => line && !line.startsWith('#'))
  const froms = lines.map((line, i) => [line, i] as const).filter(([line]) => /^FROM\s/i.test(line))
  t.ok(froms.length >= 2, `at least two FROM stages (found ${froms.length})`)
  const finalStage = lines.slice(froms.at(-1)?.[1] ?? 0)
  const users = finalStage.filter(line => /^USER\s/i.test(line)).map(line => line.split(/\s+/)[1] ?? '')
  t.ok(users.length > 0, 'the final stage sets USER')
  const user = (users.at(-1) ?? '').split(':')[0]
  t.ok(user && user !== 'root' && user !== '0', `the final USER is not root: ${user}`)
})

t.test('docker-compose.cluster.yml points the app at a 3-master Redis Cluster', async t => {
  const base = parse(await read('docker-compose.yml')) as { services: Record<string, Service> }
  const cluster = parse(await read('docker-compose.cluster.yml'), { merge: true }) as { services: Record<string, Service & { entrypoint?: string[] }> }

  // Compose merges an override's environment into the base service's, key by key.
  const environment = { ...environmentOf(base.services.app), ...environmentOf(cluster.services.app) }
  const values = Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, withDefaults(value)]))
  const config = loadConfig(values as ConfigInput)
  t.equal(config.REDIS_URL, undefined, 'REDIS_URL is unset (empty)')
  t.equal(config.REDIS_CLUSTER_NODES, 'redis-1:6379,redis-2:6379,redis-3:6379', 'the three cluster services')
  const nodes = ['redis-1', 'redis-2', 'redis-3']
  for (const name of nodes) {
    const args = (cluster.services[name]?.command ?? []) as string[]
    t.equal(cluster.services[name]?.image, 'redis:7', `${name}: redis 7`)
    t.equal(args[args.indexOf('--cluster-enabled') + 1], 'yes', `${name}: cluster mode`)
    t.equal(args[args.indexOf('--appendonly') + 1], 'yes', `${name}: AOF on`)
  }

  // Its parts, run here: the nodes' own arguments, and the init command (hosts resolved to
  // 127.0.0.1 and the ports to free ones, as getent and the compose network would).
  const ports: number[] = []
  for (const name of nodes) {
    const port = await freePort()
    const dir = await tempDir(t)
    const args = ((cluster.services[name]?.command ?? []) as string[]).slice(1).map(arg => arg.replace('/data/', `${dir}/`))
    startProcess(t, [...args, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir], port)
    ports.push(port)
  }
  for (const port of ports) await until(async () => (await ask({ host: '127.0.0.1', port }, 'PING')) === 'PONG')
  let script = String((cluster.services['redis-cluster-init']?.command as string[])[0]).replaceAll('$$', '$')
  nodes.forEach((name, i) => {
    script = script.replace(`$(getent hosts ${name} | cut -d' ' -f1):6379`, `127.0.0.1:${ports[i]}`).replace(`-h ${name} `, `-h 127.0.0.1 -p ${ports[i]} `)
  })
  t.notMatch(script, /redis-\d|getent|6379/, `every host resolved: ${script}`)
  await promisify(execFile)('sh', ['-c', script])
  for (const port of ports) await until(async () => String(await ask({ host: '127.0.0.1', port }, 'CLUSTER', 'INFO')).includes('cluster_state:ok'))
  t.pass('the init command made a cluster')
  await promisify(execFile)('sh', ['-c', script])
  t.pass('and run again (a restart), it leaves the cluster as it is')
})

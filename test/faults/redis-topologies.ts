// Real Redis topologies on loopback for the scale-out tests: a Cluster of masters (redis-server
// --cluster-enabled + redis-cli --cluster create) and a master, a replica and sentinels
// (redis-server --sentinel). Every process is killed at teardown.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { tempDir, type TestContext } from '../helper.js'

const HOST = '127.0.0.1'

// Test-only certificates: a CA and a server certificate for 127.0.0.1 that it signed.
const TLS_DIR = join(import.meta.dirname, 'redis-tls')
export const TLS_CA = readFileSync(join(TLS_DIR, 'ca.pem'), 'utf8')

/** The arguments that make a redis-server listen with TLS only, on `port`. */
function tlsArgs (port: number): string[] {
  return ['--port', '0', '--tls-port', String(port), '--tls-cert-file', join(TLS_DIR, 'server.pem'),
    '--tls-key-file', join(TLS_DIR, 'server-key.pem'), '--tls-ca-cert-file', join(TLS_DIR, 'ca.pem'), '--tls-auth-clients', 'no']
}

/** How the test's topologies are secured: a password on every process, and TLS if asked. */
export interface Security { password?: string, tls?: boolean }

export interface Node { host: string, port: number }

/** A process of the topology: its address, and a way to kill it outright. */
export interface RedisProcess extends Node {
  kill (): Promise<void>
  pause (): void
  resume (): void
}

/** A free port whose cluster-bus port (port + 10000) is free too. */
export async function freePort (): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 20000)
    if (await canListen(port) && await canListen(port + 10000)) return port
  }
}

async function canListen (port: number): Promise<boolean> {
  const server = createServer()
  try {
    server.listen(port, HOST)
    await once(server, 'listening')
    return true
  } catch {
    return false
  } finally {
    server.close()
  }
}

export function startProcess (t: TestContext, args: string[], port: number): RedisProcess {
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' })
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
  t.teardown(kill)
  const signal = (name: NodeJS.Signals) => { if (child.pid) process.kill(child.pid, name) }
  return { host: HOST, port, kill, pause: () => signal('SIGSTOP'), resume: () => signal('SIGCONT') }
}

/** Sends one command to one node (with its password, if any); undefined when it does not answer. */
export async function ask (node: Node & Security, ...command: string[]): Promise<unknown> {
  const { tls, ...address } = node
  const redis = new Redis({ ...address, ...(tls && { tls: { ca: TLS_CA } }), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 1000 })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await redis.call(command[0] as string, ...command.slice(1))
  } catch {
    return undefined
  } finally {
    redis.disconnect()
  }
}

/** Polls until `check` holds, at most `timeoutMs`. */
export async function until (check: () => Promise<boolean>, timeoutMs = 15_000, what = 'a condition'): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** A Redis Cluster of `masters` masters, no replicas, every slot assigned and the state ok. */
export async function startRedisCluster (t: TestContext, { masters = 3, password, tls = false }: Security & { masters?: number } = {}): Promise<RedisProcess[]> {
  const nodes: RedisProcess[] = []
  for (let i = 0; i < masters; i++) {
    const port = await freePort()
    const dir = await tempDir(t)
    nodes.push(startProcess(t, [
      ...(tls ? [...tlsArgs(port), '--tls-cluster', 'yes'] : ['--port', String(port)]),
      ...(password ? ['--requirepass', password, '--masterauth', password] : []),
      '--bind', HOST, '--cluster-enabled', 'yes', '--cluster-node-timeout', '2000',
      '--cluster-config-file', join(dir, 'nodes.conf'), '--dir', dir, '--save', '', '--appendonly', 'no'
    ], port))
  }
  const secured = (node: Node) => ({ ...node, password, tls })
  for (const node of nodes) await until(async () => (await ask(secured(node), 'PING')) === 'PONG', 10_000, 'a cluster node')
  const cli = [...(tls ? ['--tls', '--cacert', join(TLS_DIR, 'ca.pem')] : []), ...(password ? ['-a', password, '--no-auth-warning'] : [])]
  await promisify(execFile)('redis-cli', [...cli, '--cluster', 'create', ...nodes.map(n => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'])
  for (const node of nodes) await until(async () => String(await ask(secured(node), 'CLUSTER', 'INFO')).includes('cluster_state:ok'), 15_000, 'cluster_state:ok')
  return nodes
}

/** The master serving the slot of a key (by its hash tag), from the cluster's own slot table. */
export async function masterOfKey (node: Node, key: string): Promise<number> {
  const slot = Number(await ask(node, 'CLUSTER', 'KEYSLOT', key))
  const ranges = await ask(node, 'CLUSTER', 'SLOTS') as Array<[number, number, [string, number]]>
  const range = ranges.find(([from, to]) => slot >= from && slot <= to)
  if (!range) throw new Error(`slot ${slot} is not served`)
  return range[2][1]
}

export interface SentinelSetup {
  master: RedisProcess
  replica: RedisProcess
  sentinels: RedisProcess[]
  name: string
  password: string
  tls: boolean
  /** Each sentinel's log file: what it saw and decided (+sdown, +odown, votes, +switch-master, +tilt). */
  sentinelLogs: string[]
}

/**
 * One master, one replica and three sentinels, all requiring a password (as a managed deployment
 * does), and with `tls` speaking TLS only. The sentinels take the master for down after 500 ms
 * without an answer, and two must agree.
 */
export async function startSentinels (t: TestContext, { name = 'tollgate', tls = false }: { name?: string, tls?: boolean } = {}): Promise<SentinelSetup> {
  const password = `pw-${Math.random().toString(36).slice(2)}`
  const listen = (port: number) => tls ? [...tlsArgs(port), '--tls-replication', 'yes'] : ['--port', String(port)]
  const common = ['--bind', HOST, '--save', '', '--appendonly', 'no', '--requirepass', password, '--masterauth', password]
  // Each in a directory of its own: a replica writes the RDB of its first sync there.
  const masterPort = await freePort()
  const master = startProcess(t, [...listen(masterPort), '--dir', await tempDir(t), ...common], masterPort)
  const replicaPort = await freePort()
  const replica = startProcess(t, [...listen(replicaPort), '--dir', await tempDir(t), ...common, '--replicaof', HOST, String(masterPort)], replicaPort)
  const secured = (node: Node) => ({ ...node, password, tls })
  await until(async () => String(await ask(secured(replica), 'INFO', 'replication')).includes('master_link_status:up'), 15_000, 'the replica to sync')

  const sentinels: RedisProcess[] = []
  const sentinelLogs: string[] = []
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    const dir = await tempDir(t)
    const file = join(dir, 'sentinel.conf')
    sentinelLogs.push(join(dir, 'sentinel.log'))
    // A sentinel rewrites its config file, so each has its own.
    await writeFile(file, [
      ...(tls
        ? ['port 0', `tls-port ${port}`, `tls-cert-file ${join(TLS_DIR, 'server.pem')}`, `tls-key-file ${join(TLS_DIR, 'server-key.pem')}`,
            `tls-ca-cert-file ${join(TLS_DIR, 'ca.pem')}`, 'tls-auth-clients no', 'tls-replication yes']
        : [`port ${port}`]),
      `bind ${HOST}`, `dir ${dir}`, `logfile ${join(dir, 'sentinel.log')}`, `requirepass ${password}`, `sentinel sentinel-pass ${password}`,
      `sentinel monitor ${name} ${HOST} ${masterPort} 2`, `sentinel auth-pass ${name} ${password}`,
      `sentinel down-after-milliseconds ${name} 500`, `sentinel failover-timeout ${name} 5000`, `sentinel parallel-syncs ${name} 1`
    ].join('\n') + '\n')
    sentinels.push(startProcess(t, [file, '--sentinel'], port))
  }
  for (const sentinel of sentinels) {
    await until(async () => {
      const known = await ask(secured(sentinel), 'SENTINEL', 'SENTINELS', name) as unknown[] | undefined
      const replicas = await ask(secured(sentinel), 'SENTINEL', 'REPLICAS', name) as unknown[] | undefined
      return known?.length === 2 && replicas?.length === 1
    }, 20_000, 'the sentinels to find each other and the replica')
  }
  return { master, replica, sentinels, name, password, tls, sentinelLogs }
}

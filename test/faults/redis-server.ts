// A private redis-server for fault tests: on a free loopback port, no persistence, killed at teardown.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TestContext } from '../helper.js'

const HOST = '127.0.0.1'
const START_TIMEOUT_MS = 5000

/** A port that was free a moment ago (the kernel picks it; we release it for redis-server). */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, HOST)
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (!address || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** True once something on the port answers PING with PONG. */
async function answersPing (port: number): Promise<boolean> {
  const socket = new Socket()
  try {
    return await new Promise<boolean>(resolve => {
      const timer = setTimeout(() => resolve(false), 500)
      socket.once('error', () => { clearTimeout(timer); resolve(false) })
      socket.once('data', data => { clearTimeout(timer); resolve(data.toString().startsWith('+PONG')) })
      socket.connect(port, HOST, () => socket.write('PING\r\n'))
    })
  } finally {
    socket.destroy()
  }
}

export class RedisServer {
  private child: ChildProcess | undefined
  readonly url: string

  constructor (readonly port: number) {
    this.url = `redis://${HOST}:${port}`
  }

  /** Starts redis-server on the port and waits (bounded) until it answers. */
  async start (): Promise<void> {
    if (this.child) throw new Error('already running')
    const child = spawn('redis-server', [
      '--port', String(this.port), '--bind', HOST, '--save', '', '--appendonly', 'no',
      '--protected-mode', 'yes', '--loglevel', 'warning'
    ], { stdio: ['ignore', 'ignore', 'inherit'] })
    this.child = child
    child.once('exit', () => { if (this.child === child) this.child = undefined })
    const deadline = Date.now() + START_TIMEOUT_MS
    while (Date.now() < deadline) {
      if (!this.child) throw new Error(`redis-server on port ${this.port} exited at start`)
      if (await answersPing(this.port)) return
      await sleep(50)
    }
    throw new Error(`redis-server on port ${this.port} did not answer within ${START_TIMEOUT_MS} ms`)
  }

  /** Freezes the server: connections stay open, nothing is answered (a hung Redis). */
  pause (): void {
    this.signal('SIGSTOP')
  }

  resume (): void {
    this.signal('SIGCONT')
  }

  /** Kills the server outright (its data is gone: no persistence) and waits until it has exited. */
  async kill (): Promise<void> {
    const child = this.child
    if (!child) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }

  private signal (signal: NodeJS.Signals) {
    if (!this.child?.pid) throw new Error('redis-server is not running')
    process.kill(this.child.pid, signal)
  }
}

/** Starts a private redis-server; it is killed at teardown (also when paused). */
export async function startRedisServer (t: TestContext): Promise<RedisServer> {
  // The port is free when picked but not reserved: if something takes it first, pick another.
  for (let attempt = 1; ; attempt++) {
    const server = new RedisServer(await freePort())
    t.teardown(() => server.kill())
    try {
      await server.start()
      return server
    } catch (err) {
      await server.kill()
      if (attempt === 3) throw err
    }
  }
}

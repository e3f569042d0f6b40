import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import type { TestContext } from '../helper.js'

export type ProxyMode = 'forward' | 'refuse' | 'hang'

/**
 * A loopback TCP proxy in front of a real server, to cut it off without stopping it:
 * `refuse` drops every connection at once, `hang` accepts and never answers.
 */
export async function tcpProxy (t: TestContext, target: { host: string, port: number }) {
  let mode: ProxyMode = 'forward'
  const sockets = new Set<Socket>()
  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
  }
  const server = createServer(client => {
    track(client)
    if (mode === 'refuse') return client.destroy()
    if (mode === 'hang') return
    const upstream = connect(target.port, target.host)
    track(upstream)
    client.pipe(upstream).pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return new Promise<void>(resolve => server.close(() => resolve()))
  })
  return {
    port: (server.address() as AddressInfo).port,
    /** Switches mode; leaving `forward` also cuts the connections already open. */
    set (next: ProxyMode) {
      mode = next
      if (next !== 'forward') for (const socket of sockets) socket.destroy()
    }
  }
}

import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { TestContext } from '../helper.js'

/**
 * A local HTTP server that only records what asks it: a token header naming it (jku, x5u) must
 * never make the verifier fetch anything. Closed at teardown.
 */
export async function urlTrap (t: TestContext): Promise<{ base: string, requests: string[] }> {
  const requests: string[] = []
  const server = createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`)
    response.setHeader('content-type', 'application/json')
    response.end('{"keys":[]}')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

import { once } from 'node:events'
import { connect } from 'node:net'
import t from 'tap'
import { build, registerAndLogin } from '../helper.js'

t.test('while the server closes, a request still arriving on an open connection gets the documented 503', async t => {
  const app = await build(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const { email } = await registerAndLogin(app)
  const login = JSON.stringify({ email, password: 'not the password' })

  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = ''
  socket.setEncoding('utf8').on('data', chunk => { received += chunk })
  // A login whose body is still on its way when close() starts: it was accepted before.
  const requestSeen = once(app.server, 'request')
  socket.write(`POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(login)}\r\n\r\n`)
  await requestSeen
  const closed = app.close()
  // The rest of its body, then a second request on the same connection, which arrives while closing.
  socket.write(login + 'GET /.well-known/jwks.json HTTP/1.1\r\nhost: x\r\n\r\n')
  await once(socket, 'close')
  await closed

  const [first, second] = received.split(/(?=HTTP\/1\.1 )/)
  t.match(first, /^HTTP\/1\.1 401 /, 'the request in flight is answered as usual')
  t.ok(second, `a second answer on the connection: ${received}`)
  const [head = '', body = ''] = (second ?? '').split('\r\n\r\n')
  t.match(head, /^HTTP\/1\.1 503 /)
  t.match(head, /\r\nretry-after: 5\r\n/i, 'Retry-After')
  t.match(head, /\r\nconnection: close\r\n/i, 'the connection is closed after it')
  t.match(head, /\r\nx-content-type-options: nosniff\r\n/i, 'the security headers')
  t.strictSame(JSON.parse(body), { statusCode: 503, code: 'SERVICE_UNAVAILABLE', error: 'Service Unavailable', message: 'The server is shutting down; retry' })
})

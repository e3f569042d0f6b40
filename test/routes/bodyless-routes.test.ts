// The routes that take no body still get one parsed when a client sends it (Fastify parses any
// POST or DELETE body): each answer is the documented error, and its status is in the operation's
// responses (contract review).
import t from 'tap'
import { assertErrorShape } from '../fixtures.js'
import { bearer, build, registerAndLogin } from '../helper.js'

const SESSION_ID = '3f1c6a4e-0000-4000-8000-000000000000'
const ROUTES = [
  { operationId: 'logoutAll', method: 'POST', url: '/auth/logout-all', path: '/auth/logout-all', verb: 'post' },
  { operationId: 'sendVerificationEmail', method: 'POST', url: '/auth/email/verify/send', path: '/auth/email/verify/send', verb: 'post' },
  { operationId: 'endSession', method: 'DELETE', url: `/auth/sessions/${SESSION_ID}`, path: '/auth/sessions/{id}', verb: 'delete' }
] as const
const BODIES = [
  { what: 'a text body', contentType: 'text/plain', payload: 'x', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { what: 'malformed JSON', contentType: 'application/json', payload: '{', status: 400, code: 'INVALID_REQUEST' },
  { what: 'a body over 16 KiB', contentType: 'application/json', payload: JSON.stringify({ x: 'a'.repeat(17 * 1024) }), status: 413, code: 'PAYLOAD_TOO_LARGE' }
] as const

t.test('a body sent to a route that takes none: a documented error', async t => {
  const app = await build(t)
  const { tokens } = await registerAndLogin(app)
  const document = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  for (const route of ROUTES) {
    const operation = document.paths[route.path][route.verb]
    t.equal(operation.operationId, route.operationId)
    for (const body of BODIES) {
      const res = await app.inject({ method: route.method, url: route.url, headers: { ...bearer(tokens.access_token), 'content-type': body.contentType }, payload: body.payload })
      const step = `${route.operationId}, ${body.what}`
      assertErrorShape(t, res, body.status)
      t.equal(res.json().code, body.code, `${step}: ${body.code}`)
      t.ok(String(body.status) in operation.responses, `${step}: ${body.status} is documented`)
    }
  }
  const sessions = document.paths['/auth/sessions/{id}'].delete
  const long = await app.inject({ method: 'DELETE', url: `/auth/sessions/${'a'.repeat(101)}`, headers: bearer(tokens.access_token) })
  assertErrorShape(t, long, 414)
  t.ok('414' in sessions.responses, 'endSession: a path parameter over 100 characters, 414, documented')
})

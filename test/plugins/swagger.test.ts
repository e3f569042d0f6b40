import { readFileSync } from 'node:fs'
import t from 'tap'
import { bearer, build, registerAndLogin } from '../helper.js'

type Method = 'GET' | 'POST' | 'DELETE'
interface ApiRoute { method: Method, url: string, operationId: string, auth: boolean, body: boolean, failures: number[] }

// The API table of DESIGN.md: route, whether it needs an access token, whether it takes a body, and
// the failure statuses it lists (429 and 503 come from other plugins and are checked where present).
const API: ApiRoute[] = [
  { method: 'POST', url: '/auth/register', operationId: 'register', auth: false, body: true, failures: [400, 409] },
  { method: 'POST', url: '/auth/login', operationId: 'login', auth: false, body: true, failures: [400, 401] },
  { method: 'POST', url: '/auth/refresh', operationId: 'refreshToken', auth: false, body: true, failures: [400] },
  { method: 'POST', url: '/auth/logout', operationId: 'logout', auth: true, body: true, failures: [401] },
  { method: 'POST', url: '/auth/logout-all', operationId: 'logoutAll', auth: true, body: false, failures: [401] },
  { method: 'GET', url: '/auth/sessions', operationId: 'listSessions', auth: true, body: false, failures: [401] },
  { method: 'DELETE', url: '/auth/sessions/:id', operationId: 'endSession', auth: true, body: false, failures: [401, 404] },
  { method: 'POST', url: '/auth/password', operationId: 'changePassword', auth: true, body: true, failures: [400, 401] },
  { method: 'POST', url: '/auth/email/verify', operationId: 'verifyEmail', auth: false, body: true, failures: [400] },
  { method: 'POST', url: '/auth/email/verify/send', operationId: 'sendVerificationEmail', auth: true, body: false, failures: [401] },
  { method: 'POST', url: '/auth/password/forgot', operationId: 'forgotPassword', auth: false, body: true, failures: [400] },
  { method: 'POST', url: '/auth/password/reset', operationId: 'resetPassword', auth: false, body: true, failures: [400] },
  { method: 'GET', url: '/users/me', operationId: 'getCurrentUser', auth: true, body: false, failures: [401] },
  { method: 'DELETE', url: '/users/me', operationId: 'deleteCurrentUser', auth: true, body: true, failures: [401] },
  { method: 'GET', url: '/.well-known/jwks.json', operationId: 'getJwks', auth: false, body: false, failures: [] },
  { method: 'GET', url: '/health/live', operationId: 'getLiveness', auth: false, body: false, failures: [] },
  { method: 'GET', url: '/health/ready', operationId: 'getReadiness', auth: false, body: false, failures: [503] }
]

// The standard OAuth endpoints (their security is not the API table's bearer-or-public) and their operationIds.
const OAUTH_OPERATIONS: Record<string, string> = {
  'POST /auth/revoke': 'revokeToken',
  'POST /auth/introspect': 'introspectToken',
  'GET /.well-known/oauth-authorization-server': 'getAuthorizationServerMetadata'
}

// Every code an Error body can carry, read from the code that gives them: `super('CODE'`,
// `code = 'CODE'`, `code: 'CODE'`, `413: 'CODE'` and `? 'CODE' : 'CODE'` (not the FST_ERR_ codes it reads).
const CODE_GIVEN = /(?:super\(|code = |: |\? )'([A-Z]+(?:_[A-Z]+)+)'/g
const SENT_CODES = new Set(['../../src/errors.ts', '../../plugins/errors.ts']
  .flatMap(file => [...readFileSync(new URL(file, import.meta.url), 'utf8').matchAll(CODE_GIVEN)].map(m => m[1] as string)))

// Introspection on, so that every operation the app can serve is in the document.
const CONFIG = { INTROSPECTION_CLIENTS: `docs-test:${'s'.repeat(32)}` }

const openApiPath = (url: string) => url.replace(/:([A-Za-z_]+)/g, '{$1}')

interface Response {
  description?: string
  headers?: Record<string, { description?: string, required?: boolean, schema?: Record<string, unknown> }>
  content?: Record<string, { schema?: { $ref?: string } }>
}

interface Operation {
  operationId?: string
  description?: string
  tags?: string[]
  summary?: string
  security?: Array<Record<string, string[]>>
  parameters?: Array<{ in: string, name: string, required?: boolean, schema?: unknown }>
  requestBody?: { content?: Record<string, { schema?: unknown }> }
  responses?: Record<string, Response>
}

// Documented, and required: every such response carries it, so a generated client need not check.
const hasHeader = (response: Response | undefined, name: string) =>
  Object.entries(response?.headers ?? {}).some(([header, { required }]) => header.toLowerCase() === name.toLowerCase() && required === true)
const refOf = (response: Response | undefined) => response?.content?.['application/json']?.schema?.$ref

t.test('GET /docs/json is an OpenAPI 3.1 document of the whole API', async t => {
  const app = await build(t, { config: CONFIG })
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const doc = res.json()
  t.match(doc.openapi, /^3\.1\.\d+$/)
  t.type(doc.info?.title, 'string')
  t.type(doc.info?.version, 'string')
  t.type(doc.paths, 'object')

  const present = API.filter(route => app.hasRoute({ method: route.method, url: route.url }))
  t.ok(present.length > 0, 'the app serves routes of the API table')

  t.test('every route of the API table that the app serves is documented with its method', async t => {
    for (const route of present) {
      t.type(doc.paths[openApiPath(route.url)]?.[route.method.toLowerCase()], 'object', `${route.method} ${route.url}`)
    }
  })

  t.test('info names the license and a contact; servers is the relative root', async t => {
    t.match(doc.info.license, { name: 'MIT', url: /^https:\/\// })
    t.type(doc.info.contact?.name, 'string')
    t.same(doc.servers?.map((server: { url: string }) => server.url), ['/'], 'paths carry any prefix, so the server is the root')
  })

  t.test('every operationId is unique', async t => {
    const ids = Object.values(doc.paths as Record<string, Record<string, Operation>>).flatMap(methods => Object.values(methods).map(op => op.operationId)).filter(Boolean)
    t.same(ids, [...new Set(ids)])
  })

  t.test('Error.code is an enum of every code the app sends', async t => {
    const code = doc.components.schemas.Error.properties.code
    t.equal(code.type, 'string')
    t.ok(Array.isArray(code.enum), 'an enum a generated client can switch over')
    t.same([...code.enum].sort(), [...SENT_CODES].sort(), 'exactly the codes of src/errors.ts and plugins/errors.ts')
  })

  t.test('no response keeps the generator\'s placeholder description', async t => {
    t.notMatch(res.body, /"description":"Default Response"/)
  })

  t.test('bearerAuth is an http bearer scheme', async t => {
    t.has(doc.components?.securitySchemes?.bearerAuth, { type: 'http', scheme: 'bearer' })
  })

  t.test('components.schemas names what clients handle: User, TokenResponse, Session, Error…', async t => {
    const named = ['Accepted', 'User', 'TokenResponse', 'Session', 'Jwk', 'JwkSet', 'AuthorizationServerMetadata', 'Error', 'OAuthError']
    for (const name of named) t.type(doc.components?.schemas?.[name], 'object', name)
    t.same(doc.paths['/auth/sessions'].get.responses['200'].content['application/json'].schema.items, { $ref: '#/components/schemas/Session' }, 'listSessions: an array of Session')
    t.same(doc.paths['/auth/password/forgot'].post.responses['202'].content['application/json'].schema.$ref, '#/components/schemas/Accepted', 'forgotPassword: Accepted')
    t.same(doc.components.schemas.User.required?.slice().sort(), ['created_at', 'email', 'email_verified', 'id', 'name'])
    t.same(doc.components.schemas.TokenResponse.required?.slice().sort(), ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type'])
    t.same(doc.components.schemas.Error.required?.slice().sort(), ['code', 'error', 'message', 'statusCode'])
  })

  t.test('every $ref points at a schema in components', async t => {
    const refs = [...res.body.matchAll(/"\$ref":"([^"]+)"/g)].map(m => m[1] as string)
    t.ok(refs.length > 0, 'shared schemas are referenced')
    for (const ref of new Set(refs)) {
      const match = /^#\/components\/schemas\/(.+)$/.exec(ref)
      t.ok(match && doc.components.schemas[match[1] as string], `${ref} resolves`)
    }
  })

  for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, Operation>>)) {
    for (const [method, operation] of Object.entries(methods)) {
      const route = API.find(r => openApiPath(r.url) === path && r.method.toLowerCase() === method)
      const oauthOperationId = OAUTH_OPERATIONS[`${method.toUpperCase()} ${path}`]
      t.test(`${method.toUpperCase()} ${path}`, async t => {
        t.ok(Array.isArray(operation.tags) && operation.tags.length > 0, 'has tags')
        t.ok(typeof operation.summary === 'string' && operation.summary.length > 0, 'has a summary')
        t.ok(Array.isArray(operation.security), 'has security')
        if (route) {
          t.same(operation.security, route.auth ? [{ bearerAuth: [] }] : [], route.auth ? 'bearer' : 'public')
        }

        // The document agrees with the app: a protected operation answers 401 without a token.
        const url = path.replace(/\{[^}]+\}/g, '00000000-0000-4000-8000-000000000000')
        const anonymous = await app.inject({ method: method.toUpperCase() as Method, url })
        if (operation.security?.length) {
          t.equal(anonymous.statusCode, 401, 'documented as protected: 401 without a token')
          t.type(anonymous.headers['www-authenticate'], 'string', 'and its challenge')
        } else {
          t.not(anonymous.statusCode, 401, 'documented as public: no token needed')
        }

        if (route?.body) {
          t.type(operation.requestBody?.content, 'object', 'documents its request body')
        }
        for (const [type, media] of Object.entries(operation.requestBody?.content ?? {})) {
          t.type(media.schema, 'object', `request body ${type} has a schema`)
        }
        for (const parameter of operation.parameters ?? []) {
          t.type(parameter.schema, 'object', `parameter ${parameter.name} has a schema`)
          if (parameter.in === 'path') t.ok(path.includes(`{${parameter.name}}`), `path parameter ${parameter.name} is in the path`)
        }

        const responses = operation.responses ?? {}
        const statuses = Object.keys(responses)
        t.ok(statuses.some(s => /^2\d\d$/.test(s)), 'documents a success response')
        for (const [status, response] of Object.entries(responses)) {
          t.type(response.description, 'string', `${status} has a description`)
          if (status === '204') {
            t.notOk(response.content, '204 has no body')
            continue
          }
          const media = Object.entries(response.content ?? {})
          t.ok(media.length > 0, `${status} documents a body`)
          for (const [type, content] of media) t.type(content.schema, 'object', `${status} ${type} has a schema`)
        }
        if (route) {
          for (const failure of route.failures) t.ok(statuses.includes(String(failure)), `documents ${failure}`)
        }
        if (operation.security?.length) t.ok(statuses.includes('401'), 'a protected operation documents 401')
        if (operation.requestBody) t.ok(statuses.includes('400'), 'an operation with a body documents 400')

        // What a generated client and its author need; the OpenAPI lint (npm run lint:openapi) checks more.
        t.test('names its operation for clients, and documents its errors\' headers', async t => {
          const operationId = route?.operationId ?? oauthOperationId
          if (operationId) t.equal(operation.operationId, operationId, 'operationId')
          else t.match(operation.operationId, /^[a-z][A-Za-z]+$/, 'a camelCase operationId')
          t.ok(typeof operation.description === 'string' && operation.description.length > 0, 'has a description')
          if (operation.parameters?.length || operation.requestBody || operation.security?.length) {
            t.ok(statuses.some(s => /^4\d\d$/.test(s)), 'an operation that takes input documents a 4xx')
          }
          for (const [status, response] of Object.entries(responses)) {
            if (status === '401') t.ok(hasHeader(response, 'WWW-Authenticate'), '401 documents WWW-Authenticate, required')
            if (status === '429' || status === '503') t.ok(hasHeader(response, 'Retry-After'), `${status} documents Retry-After, required`)
            if (/\/(TokenResponse|OAuthError)$/.test(refOf(response) ?? '')) {
              t.ok(hasHeader(response, 'Cache-Control') && hasHeader(response, 'Pragma'), `${status} of tokens documents Cache-Control and Pragma, required`)
            }
            for (const [name, header] of Object.entries(response.headers ?? {})) {
              t.notOk(header.schema && 'x-always-sent' in header.schema, `${status} ${name}: no internal mark left in the document`)
            }
          }
          // An OAuth endpoint answers an oversized or unsupported body with its 400 invalid_request.
          if (operation.requestBody && !refOf(responses['400'])?.endsWith('/OAuthError')) {
            t.ok(statuses.includes('413') && statuses.includes('415'), 'an operation with a body documents 413 and 415')
          }
        })
      })
    }
  }
})

t.test('an oversized or unsupported body gets a documented answer', async t => {
  const app = await build(t, { config: CONFIG })
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  const { tokens } = await registerAndLogin(app)
  for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, Operation>>)) {
    for (const [method, operation] of Object.entries(methods)) {
      if (!operation.requestBody) continue
      const statuses = Object.keys(operation.responses ?? {})
      const request = { method: method.toUpperCase() as Method, url: path, headers: bearer(tokens.access_token) }
      const name = `${method.toUpperCase()} ${path}`
      const oversized = await app.inject({ ...request, headers: { ...request.headers, 'content-type': 'application/json' }, payload: JSON.stringify({ padding: 'x'.repeat(17 * 1024) }) })
      if (statuses.includes('413')) t.has({ status: oversized.statusCode, ...oversized.json() }, { status: 413, code: 'PAYLOAD_TOO_LARGE' }, `${name}: 413 to a 17 KiB body`)
      else t.ok(statuses.includes(String(oversized.statusCode)), `${name}: ${oversized.statusCode} to a 17 KiB body is documented`)
      const unsupported = await app.inject({ ...request, headers: { ...request.headers, 'content-type': 'application/xml' }, payload: '<a/>' })
      if (statuses.includes('415')) t.has({ status: unsupported.statusCode, ...unsupported.json() }, { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }, `${name}: 415 to an XML body`)
      else t.ok(statuses.includes(String(unsupported.statusCode)), `${name}: ${unsupported.statusCode} to an XML body is documented`)
    }
  }
})

t.test('GET /docs serves the Swagger UI', async t => {
  const app = await build(t)
  let res = await app.inject({ method: 'GET', url: '/docs' })
  if (res.statusCode >= 300 && res.statusCode < 400) {
    t.type(res.headers.location, 'string', 'a redirect names its target')
    res = await app.inject({ method: 'GET', url: new URL(res.headers.location as string, 'http://localhost/docs/').pathname })
  }
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html/)
  t.match(res.body, /swagger/i)
})

import t from 'tap'
import { build } from '../helper.js'

type Method = 'GET' | 'POST' | 'DELETE'
interface ApiRoute { method: Method, url: string, auth: boolean, body: boolean, failures: number[] }

// The API table of DESIGN.md: route, whether it needs an access token, whether it takes a body, and
// the failure statuses it lists (429 and 503 come from other plugins and are checked where present).
const API: ApiRoute[] = [
  { method: 'POST', url: '/auth/register', auth: false, body: true, failures: [400, 409] },
  { method: 'POST', url: '/auth/login', auth: false, body: true, failures: [400, 401] },
  { method: 'POST', url: '/auth/refresh', auth: false, body: true, failures: [400] },
  { method: 'POST', url: '/auth/logout', auth: true, body: true, failures: [401] },
  { method: 'POST', url: '/auth/logout-all', auth: true, body: false, failures: [401] },
  { method: 'GET', url: '/auth/sessions', auth: true, body: false, failures: [401] },
  { method: 'DELETE', url: '/auth/sessions/:id', auth: true, body: false, failures: [401, 404] },
  { method: 'POST', url: '/auth/password', auth: true, body: true, failures: [400, 401] },
  { method: 'GET', url: '/users/me', auth: true, body: false, failures: [401] },
  { method: 'DELETE', url: '/users/me', auth: true, body: true, failures: [401] },
  { method: 'GET', url: '/.well-known/jwks.json', auth: false, body: false, failures: [] },
  { method: 'GET', url: '/health/live', auth: false, body: false, failures: [] },
  { method: 'GET', url: '/health/ready', auth: false, body: false, failures: [503] }
]

const openApiPath = (url: string) => url.replace(/:([A-Za-z_]+)/g, '{$1}')

interface Operation {
  tags?: string[]
  summary?: string
  security?: Array<Record<string, string[]>>
  parameters?: Array<{ in: string, name: string, required?: boolean, schema?: unknown }>
  requestBody?: { content?: Record<string, { schema?: unknown }> }
  responses?: Record<string, { description?: string, content?: Record<string, { schema?: unknown }> }>
}

t.test('GET /docs/json is an OpenAPI 3.1 document of the whole API', async t => {
  const app = await build(t)
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

  t.test('bearerAuth is an http bearer scheme', async t => {
    t.has(doc.components?.securitySchemes?.bearerAuth, { type: 'http', scheme: 'bearer' })
  })

  t.test('components.schemas holds User, TokenResponse and Error', async t => {
    for (const name of ['User', 'TokenResponse', 'Error']) t.type(doc.components?.schemas?.[name], 'object', name)
    t.same(doc.components.schemas.User.required?.slice().sort(), ['created_at', 'email', 'id', 'name'])
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
        if (operation.security?.length) t.equal(anonymous.statusCode, 401, 'documented as protected: 401 without a token')
        else t.not(anonymous.statusCode, 401, 'documented as public: no token needed')

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
      })
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

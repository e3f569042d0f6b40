import fc from 'fast-check'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { ERROR_KEYS } from '../fixtures.js'
import { bearer, build, claimsOf, refresh, registerAndLogin, type TestApp } from '../helper.js'

// Schema-violating requests to every route of the app, with and without a valid access token: every
// answer is a 4xx in the error shape (the RFC 6749 §5.2 shape on /auth/refresh), never a 5xx, and
// names no library. All through app.inject. Routes come from app.printRoutes(); what each expects
// (bearer auth, body schema, path parameters) from the OpenAPI document, so a new route is fuzzed
// without editing this file. FUZZ_SEED replays a run, FUZZ_RUNS changes its length.

const RUNS = Number(process.env.FUZZ_RUNS ?? 150)
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 0x7fffffff)
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// No library, dependency error code or stack in an error body (the names of fixtures' LIBRARY_NAMES, and more).
const LIBRARY_DETAIL = /fast-jwt|FAST_JWT|FST_|TokenError|@fastify|mikro-?orm|ioredis|argon2|"stack"|\n\s+at |node_modules/i
// Keys that have polluted prototypes elsewhere, plus MikroORM/Mongo-style operators.
const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '$ne', '$gt', '__defineGetter__']

interface JsonSchema {
  $ref?: string
  type?: string
  properties?: Record<string, JsonSchema>
  required?: string[]
  additionalProperties?: boolean
  minLength?: number
  maxLength?: number
  format?: string
  enum?: unknown[]
}

interface OpenApiOperation {
  security?: Array<Record<string, string[]>>
  requestBody?: { required?: boolean, content: Record<string, { schema: JsonSchema }> }
  responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }>
}

interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>
  components: { schemas: Record<string, JsonSchema> }
}

/** One route to fuzz, as Fastify registered it, with what the OpenAPI document says it takes. */
interface Target {
  method: string
  /** Fastify's path: `:id` parameters and `*` wildcards. */
  path: string
  documented: boolean
  secured: boolean
  body?: { schema: JsonSchema, required: boolean, form: boolean }
  /** Errors in the RFC 6749 §5.2 shape. */
  oauth: boolean
}

interface Case {
  options: InjectOptions
  /** The request breaks the route's contract somewhere, so the answer must be a 4xx. */
  mustFail: boolean
}

interface Credentials { access: string, refresh: string }

/** Every (method, path) of `app.printRoutes()`'s tree. */
function routesOf (tree: string): Array<{ method: string, path: string }> {
  const routes: Array<{ method: string, path: string }> = []
  const stack: string[] = []
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?$/.exec(line)
    if (!match) continue
    const depth = (match[1] as string).length / 4
    const path = (stack[depth - 1] ?? '') + (match[2] as string)
    stack[depth] = path
    stack.length = depth + 1
    for (const method of (match[3] ?? '').split(',').map(m => m.trim()).filter(Boolean)) {
      routes.push({ method, path: path.startsWith('/') ? path : `/${path}` })
    }
  }
  return routes
}

function targetsOf (app: TestApp, doc: OpenApiDocument): Target[] {
  const resolve = (schema: JsonSchema): JsonSchema =>
    schema.$ref ? doc.components.schemas[schema.$ref.split('/').pop() as string] as JsonSchema : schema
  return routesOf(app.printRoutes({ commonPrefix: false })).map(({ method, path }) => {
    const openApiPath = path.replace(/:(\w+)/g, '{$1}')
    const operations = doc.paths[openApiPath]
    // HEAD is the GET route without a body in the answer.
    const operation = operations?.[method.toLowerCase()] ?? (method === 'HEAD' ? operations?.get : undefined)
    if (!operation) return { method, path, documented: false, secured: false, oauth: false }
    const content = method === 'HEAD' ? undefined : operation.requestBody?.content
    const json = content?.['application/json']
    const error400 = operation.responses['400']?.content?.['application/json']?.schema.$ref ?? ''
    return {
      method,
      path,
      documented: true,
      secured: (operation.security ?? []).some(requirement => 'bearerAuth' in requirement),
      body: json
        ? { schema: resolveDeep(resolve(json.schema), resolve), required: operation.requestBody?.required !== false, form: 'application/x-www-form-urlencoded' in (content ?? {}) }
        : undefined,
      oauth: error400.endsWith('/OAuthError')
    }
  })
}

function resolveDeep (schema: JsonSchema, resolve: (s: JsonSchema) => JsonSchema): JsonSchema {
  if (!schema.properties) return schema
  return { ...schema, properties: Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, resolve(v)])) }
}

// ---- Arbitraries ---------------------------------------------------------------------------------

const ascii = (maxLength: number, minLength = 0) => fc.string({ unit: 'grapheme-ascii', minLength, maxLength })

/** An Authorization header: valid (also with odd spacing and scheme case) or not, or none at all. */
function authorizationArb ({ access, refresh }: Credentials) {
  return fc.oneof(
    fc.constant({ header: `Bearer ${access}`, valid: true }),
    fc.tuple(fc.constantFrom('Bearer', 'bearer', 'BEARER', 'bEaReR'), fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 64 }))
      .map(([scheme, before, after]) => ({ header: `${scheme}${' '.repeat(before)}${access}${' '.repeat(after)}`, valid: true })),
    fc.constant({ header: undefined, valid: false }),
    ascii(200).map(s => ({ header: s, valid: false })),
    ascii(200).map(s => ({ header: `Bearer ${s}`, valid: false })),
    fc.integer({ min: 1000, max: 60_000 }).map(n => ({ header: `Bearer ${'A'.repeat(n)}`, valid: false })),
    fc.integer({ min: 0, max: 5000 }).map(n => ({ header: `Bearer${' '.repeat(n)}`, valid: false })),
    fc.constantFrom(
      `Bearer ${access} ${access}`, `Bearer ${access}, Bearer ${access}`, `Bearer ${access}x`, `Bearer ${access.slice(0, -1)}`,
      `Bearer ${access}=`, `Bearer\t${access}`, `Token ${access}`, `${access}`, `Bearer ${refresh}`, `Basic ${Buffer.from('a:b').toString('base64')}`,
      'Bearer eyJhbGciOiJub25lIn0.e30.', 'Bearer ..', 'Bearer a.b.c', `Bearer ${access.split('.').slice(0, 2).join('.')}`
    ).map(header => ({ header, valid: false }))
  )
}

const malformedJsonArb = fc.oneof(
  fc.constantFrom(
    '', ' ', '{', '}', '[', '{"a":', '{"a":1,}', '{"a":1}}', '{a:1}', "{'a':1}", 'nul', 'tru', '"x', '01', '{"a":01}',
    '\u0000', '{"a":"\u0001"}', '{"a":1} x', 'NaN', '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}',
    '{"a":{"__proto__":{"polluted":1}}}'
  ),
  fc.string({ unit: 'binary', maxLength: 60 }).filter(s => !parses(s))
)

function parses (text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

const UNSUPPORTED_TYPES = ['application/xml', 'text/html', 'multipart/form-data; boundary=x', 'application/octet-stream', 'image/png', 'application/vnd.api+json', ';;;', 'application/x-www-form-urlencoded']

/** Any JSON value: nested objects, arrays, numbers, null, unicode, hostile keys. */
const jsonValueArb = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom({ $ne: null }, { $gt: '' }, [[[]]], 1e308, -0, Number.MAX_SAFE_INTEGER + 2),
  fc.string({ unit: 'binary', maxLength: 40 })
)

/** A value the schema refuses, with no type coercion to rescue it (coerceTypes is off). */
function badValueArb (schema: JsonSchema): fc.Arbitrary<unknown> {
  const object = fc.dictionary(fc.oneof(fc.constantFrom(...HOSTILE_KEYS), ascii(10)), jsonValueArb, { maxKeys: 3 })
  const array = fc.array(jsonValueArb, { maxLength: 3 })
  const number = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))
  const byType: Record<string, Array<fc.Arbitrary<unknown>>> = {
    string: [number, fc.boolean(), fc.constant(null), array, object],
    integer: [fc.string({ maxLength: 10 }), fc.double({ min: 0.5, max: 1e9, noNaN: true }).filter(n => !Number.isInteger(n)), fc.boolean(), fc.constant(null), array, object],
    number: [fc.string({ maxLength: 10 }), fc.boolean(), fc.constant(null), array, object],
    boolean: [number, fc.string({ maxLength: 10 }), fc.constant(null), array, object],
    object: [number, fc.string({ maxLength: 10 }), fc.boolean(), fc.constant(null), array],
    array: [number, fc.string({ maxLength: 10 }), fc.boolean(), fc.constant(null), object]
  }
  const options = [...(byType[schema.type ?? 'string'] ?? byType.string as Array<fc.Arbitrary<unknown>>)]
  if (schema.maxLength !== undefined) {
    const max = schema.maxLength
    // Huge strings too, beyond the 16 KiB body limit (a 413).
    options.push(fc.tuple(fc.constantFrom('x', 'é', '😀', '\\', '"', '\u0000', '\u202e'), fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 9, max: 20_000 })))
      .map(([unit, extra]) => unit.repeat(max + extra)))
  }
  if ((schema.minLength ?? 0) > 0) options.push(ascii((schema.minLength as number) - 1))
  if (schema.format === 'email') options.push(fc.string({ unit: 'grapheme', maxLength: 40 }).filter(s => !s.includes('@')))
  if (schema.format === 'uuid') options.push(ascii(40).filter(s => !UUID.test(s)))
  if (schema.enum) options.push(fc.string({ maxLength: 20 }).filter(s => !schema.enum?.includes(s)))
  return fc.oneof(...options)
}

/** A value the schema accepts (or nearly: a stray extra violation changes nothing). */
function goodValueArb (name: string, schema: JsonSchema, credentials: Credentials): fc.Arbitrary<unknown> {
  if (name === 'refresh_token') return fc.constantFrom(credentials.refresh, 'not-a-token')
  if (schema.enum) return fc.constantFrom(...schema.enum)
  if (schema.format === 'email') return fc.emailAddress()
  if (schema.format === 'uuid') return fc.uuid()
  const min = schema.minLength ?? 0
  return fc.string({ unit: 'grapheme', minLength: Math.max(min, 1), maxLength: Math.min(schema.maxLength ?? 40, Math.max(min, 1) + 30) })
}

type Entries = Array<[string, unknown]>

/** JSON text from entries: keeps `__proto__` as a member and allows a name twice. */
const jsonText = (entries: Entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`

/** An object body for this schema with at least one member broken, missing or added. */
function badObjectArb (schema: JsonSchema, credentials: Credentials): fc.Arbitrary<Entries> {
  const properties = schema.properties ?? {}
  const names = Object.keys(properties)
  const required = schema.required ?? []
  const noiseKey = fc.oneof(fc.constantFrom(...HOSTILE_KEYS), ascii(12, 1)).filter(k => !names.includes(k))
  const noise = fc.array(fc.tuple(noiseKey, jsonValueArb), { maxLength: 3 })
  const valid = fc.record(Object.fromEntries(names.map(n => [n, goodValueArb(n, properties[n] as JsonSchema, credentials)])))
  const optionalDropped = fc.subarray(names.filter(n => !required.includes(n)))
  const base = fc.tuple(valid, optionalDropped).map(([values, dropped]) => names.filter(n => !dropped.includes(n)).map((n): [string, unknown] => [n, values[n]]))

  const violations: Array<fc.Arbitrary<Entries>> = []
  for (const name of names) {
    violations.push(fc.tuple(base, badValueArb(properties[name] as JsonSchema)).map(([entries, bad]) =>
      [...entries.filter(([k]) => k !== name), [name, bad]]))
  }
  for (const name of required) violations.push(base.map(entries => entries.filter(([k]) => k !== name)))
  if (schema.additionalProperties === false) {
    violations.push(fc.tuple(base, noiseKey, jsonValueArb).map(([entries, key, value]) => [...entries, [key, value]]))
  }
  if (violations.length === 0) throw new Error('a body schema with nothing to break: teach the fuzzer its type')
  return fc.tuple(fc.oneof(...violations), noise).map(([entries, extra]) => [...entries, ...extra])
}

interface Body { contentType?: string, payload?: string, breaks: boolean }

/** A body for a route with a body schema: every one breaks it. */
function badBodyArb (body: NonNullable<Target['body']>, credentials: Credentials): fc.Arbitrary<Body> {
  const options: Array<fc.Arbitrary<Body>> = [
    fc.tuple(badObjectArb(body.schema, credentials), fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON'))
      .map(([entries, contentType]) => ({ contentType, payload: jsonText(entries), breaks: true })),
    // Not an object at all (null is "no body" where the body is optional).
    fc.oneof(fc.integer(), fc.string({ unit: 'binary', maxLength: 40 }), fc.boolean(), fc.array(jsonValueArb, { maxLength: 4 }),
      ...(body.required ? [fc.constant(null)] : []))
      .map(value => ({ contentType: 'application/json', payload: JSON.stringify(value), breaks: true })),
    malformedJsonArb.map(payload => ({ contentType: 'application/json', payload, breaks: true })),
    fc.tuple(fc.constantFrom(...UNSUPPORTED_TYPES.filter(type => !(body.form && type.startsWith('application/x-www-form-urlencoded')))), malformedJsonArb)
      .map(([contentType, payload]) => ({ contentType, payload, breaks: true })),
    fc.tuple(fc.constantFrom('text/plain', 'text/plain; charset=utf-8'), fc.string({ minLength: 1, maxLength: 60 }))
      .map(([contentType, payload]) => ({ contentType, payload, breaks: true }))
  ]
  if (body.required) options.push(fc.constant({ breaks: true }))
  if (body.form) options.push(badFormArb(body.schema, credentials).map(payload => ({ contentType: 'application/x-www-form-urlencoded', payload, breaks: true })))
  return fc.oneof(...options)
}

/** A form body that breaks the schema even though every form value is a string. */
function badFormArb (schema: JsonSchema, credentials: Credentials): fc.Arbitrary<string> {
  const properties = schema.properties ?? {}
  const names = Object.keys(properties)
  // Every other member present with a plausible value (the real refresh token too): only `name` is wrong.
  const others = (name: string): Entries => names.filter(n => n !== name).map(n => {
    const property = properties[n] as JsonSchema
    return [n, n === 'refresh_token' ? credentials.refresh : property.enum ? property.enum[0] : 'x']
  })
  const violations: Array<fc.Arbitrary<Entries>> = []
  for (const name of schema.required ?? []) violations.push(fc.constant(others(name)))
  for (const name of names) {
    const property = properties[name] as JsonSchema
    // The same name twice parses as an array.
    violations.push(goodValueArb(name, property, credentials).map((value): Entries => [...others(name), [name, value], [name, value]]))
    if (property.maxLength !== undefined) {
      violations.push(fc.integer({ min: 1, max: 20_000 }).map((extra): Entries => [...others(name), [name, 'x'.repeat((property.maxLength as number) + extra)]]))
    }
    if ((property.minLength ?? 0) > 0) violations.push(fc.constant([...others(name), [name, '']]))
    if (property.enum) violations.push(ascii(20).filter(s => !property.enum?.includes(s)).map((s): Entries => [...others(name), [name, s]]))
  }
  const noise = fc.array(fc.tuple(fc.constantFrom('__proto__', '__proto__[polluted]', 'constructor[prototype][polluted]', 'a[]', 'a[b]'), ascii(10)), { maxLength: 3 })
  return fc.tuple(fc.oneof(...violations), noise).map(([entries, extra]) =>
    [...entries, ...extra].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&'))
}

/** Any body at all, for routes that take none: it may or may not parse. */
const noiseBodyArb: fc.Arbitrary<Body> = fc.oneof(
  fc.constant({ breaks: false }),
  fc.tuple(jsonValueArb).map(([value]) => ({ contentType: 'application/json', payload: JSON.stringify(value) ?? 'null', breaks: false })),
  malformedJsonArb.map(payload => ({ contentType: 'application/json', payload, breaks: false })),
  fc.tuple(fc.constantFrom(...UNSUPPORTED_TYPES, 'text/plain'), ascii(60)).map(([contentType, payload]) => ({ contentType, payload, breaks: false }))
)

/** A body that can never parse: the only kind a bodiless POST with a valid token may get here (a parsed one would run it). */
const unparsableBodyArb: fc.Arbitrary<Body> = fc.oneof(
  malformedJsonArb.map(payload => ({ contentType: 'application/json', payload, breaks: true })),
  fc.tuple(fc.constantFrom(...UNSUPPORTED_TYPES), malformedJsonArb).map(([contentType, payload]) => ({ contentType, payload, breaks: true }))
)

/** A path parameter: mostly not a UUID (encoded slashes, unicode, very long, bad escapes), sometimes one. */
const paramArb = fc.oneof(
  ascii(40, 1).filter(s => !UUID.test(s)).map(s => ({ value: encodeURIComponent(s), breaks: true })),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter(s => !UUID.test(s)).map(s => ({ value: encodeURIComponent(s), breaks: true })),
  fc.constantFrom('%2F', '..%2F..%2Fusers%2Fme', 'a%2Fb', '%2e%2e', '%252F', '%00', 'null', 'undefined', '__proto__', 'constructor', '%20', '%24ne',
    encodeURIComponent('{"$ne":null}'), '00000000-0000-0000-0000-00000000000g', '{00000000-0000-0000-0000-000000000000}')
    .map(value => ({ value, breaks: true })),
  fc.integer({ min: 101, max: 3000 }).map(n => ({ value: 'a'.repeat(n), breaks: true })),
  fc.constantFrom('%', '%zz', '%E0%A4%A', '%C0%AF', '%ED%A0%80').map(value => ({ value, breaks: true })),
  fc.uuid().map(value => ({ value, breaks: false }))
)

/** The rest of a wildcard path (static files of the docs): traversal, encodings, junk. */
const wildcardArb = fc.oneof(
  fc.array(ascii(12, 1).map(encodeURIComponent), { minLength: 1, maxLength: 4 }).map(parts => parts.join('/')),
  fc.constantFrom('../../package.json', '%2e%2e/%2e%2e/package.json', '..%2F..%2Fpackage.json', 'swagger-ui.css', 'index.html', '%00', '%', '%E0%A4%A', '.env', '%2F%2Fevil.example'),
  fc.integer({ min: 101, max: 3000 }).map(n => 'a'.repeat(n))
)

const noiseHeadersArb = fc.dictionary(
  fc.constantFrom('x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'accept', 'accept-encoding', 'accept-language',
    'origin', 'user-agent', 'cookie', 'if-none-match', 'range', 'x-request-id', 'x-http-method-override', 'access-control-request-method'),
  fc.oneof(ascii(100), fc.integer({ min: 1000, max: 20_000 }).map(n => 'x'.repeat(n))),
  { maxKeys: 3 }
)

const queryArb = fc.array(fc.tuple(fc.constantFrom('__proto__[polluted]', 'constructor[prototype][polluted]', 'a', 'refresh_token', 'email', '$ne', 'a[]'), ascii(20)), { maxLength: 3 })
  .map(pairs => pairs.length ? `?${pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')}` : '')

function caseArb (target: Target, credentials: Credentials): fc.Arbitrary<Case> {
  return authorizationArb(credentials).chain(auth => {
    let body: fc.Arbitrary<Body>
    if (target.body) body = badBodyArb(target.body, credentials)
    // A valid token on a bodiless POST would run it (end every session): only bodies that cannot parse.
    else if (target.secured && auth.valid && target.method === 'POST') body = unparsableBodyArb
    else body = noiseBodyArb
    const param = target.path.includes(':') ? paramArb : fc.constant({ value: '', breaks: false })
    return fc.record({ body, param, wildcard: wildcardArb, headers: noiseHeadersArb, query: queryArb }).map(({ body, param, wildcard, headers, query }) => {
      const url = target.path.replace(/:\w+/, () => param.value).replace('*', () => wildcard) + query
      const allHeaders: Record<string, string> = { ...headers }
      if (auth.header !== undefined) allHeaders.authorization = auth.header
      if (body.contentType !== undefined) allHeaders['content-type'] = body.contentType
      return {
        options: { method: target.method as InjectOptions['method'], url, headers: allHeaders, ...(body.payload !== undefined && { payload: body.payload }) },
        mustFail: (target.secured && !auth.valid) || body.breaks || param.breaks
      }
    })
  })
}

// ---- The oracle ----------------------------------------------------------------------------------

function check (target: Target, c: Case, res: LightMyRequestResponse): void {
  const fail = (problem: string) => {
    throw new Error(`${problem}: ${target.method} ${String(c.options.url).slice(0, 200)} answered ${res.statusCode} ${res.body.slice(0, 300)}`)
  }
  if (res.statusCode >= 500) fail('a 5xx')
  if (c.mustFail && (res.statusCode < 400 || res.statusCode >= 500)) fail('a broken request not answered with a 4xx')
  if (res.statusCode < 400) return
  if (res.statusCode === 401 && !String(res.headers['www-authenticate']).startsWith('Bearer realm="tollgate"')) fail('a 401 without the Bearer challenge')
  if (target.method === 'HEAD') {
    if (res.body !== '') fail('a body in the answer to HEAD')
    return
  }
  if (!/^application\/json/.test(String(res.headers['content-type']))) fail('an error that is not JSON')
  if (LIBRARY_DETAIL.test(res.body)) fail('an error that names a library')
  let body: Record<string, unknown>
  try {
    body = res.json()
  } catch {
    return fail('an error body that does not parse')
  }
  if (target.oauth) {
    if (res.statusCode !== 400) fail('a token-endpoint error other than 400')
    if (Object.keys(body).sort().join() !== 'error,error_description') fail('not the RFC 6749 §5.2 shape')
    // The refresh grant's endpoint also refuses other grants (RFC 6749 §5.2).
    const codes = ['invalid_request', 'invalid_grant', ...(target.path.endsWith('/auth/refresh') ? ['unsupported_grant_type'] : [])]
    if (!codes.includes(String(body.error))) fail('an unexpected OAuth error code')
    if (typeof body.error_description !== 'string') fail('no error_description')
    return
  }
  if (Object.keys(body).sort().join() !== ERROR_KEYS.join()) fail('not the {statusCode, code, error, message} shape')
  if (body.statusCode !== res.statusCode) fail('statusCode in the body differs from the status')
  if (typeof body.code !== 'string' || typeof body.error !== 'string' || typeof body.message !== 'string') fail('a member of the wrong type')
}

// ---- The tests -----------------------------------------------------------------------------------

t.test('fuzz: schema-violating requests to every route are 4xx in the error shape, never 5xx', async t => {
  const app = await build(t)
  const user = await registerAndLogin(app)
  const credentials: Credentials = { access: user.tokens.access_token, refresh: user.tokens.refresh_token }
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as OpenApiDocument
  const targets = targetsOf(app, doc)
  t.comment(`fuzz seed ${SEED}, ${RUNS} runs per route (FUZZ_SEED=${SEED} replays this run)`)

  t.test('the route list is complete', async t => {
    const documented = new Set(targets.filter(target => target.documented && target.method !== 'HEAD').map(target => `${target.method.toLowerCase()} ${target.path.replace(/:(\w+)/g, '{$1}')}`))
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const method of Object.keys(operations)) t.ok(documented.has(`${method} ${path}`), `${method.toUpperCase()} ${path} is fuzzed`)
    }
    t.ok(targets.some(target => target.secured && target.body), 'some route needs a token and takes a body')
    t.ok(targets.some(target => target.oauth), 'the token endpoint is recognised')
  })

  for (const target of targets) {
    await t.test(`${target.method} ${target.path}`, async t => {
      try {
        await fc.assert(fc.asyncProperty(caseArb(target, credentials), async c => {
          check(target, c, await app.inject(c.options))
        }), { numRuns: RUNS, seed: SEED, includeErrorInReport: true })
        t.pass(`${RUNS} requests`)
      } catch (error) {
        t.fail(`seed ${SEED}: ${(error as Error).message}`)
      }
    })
  }

  await t.test('no fuzzed request spent the session: its tokens still work', async t => {
    t.ok((await app.tollgate.tokenStore.liveRefreshJtis(user.userId)).includes(claimsOf(credentials.refresh).jti as string), 'the refresh token is still the live one')
    t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(credentials.access) })).statusCode, 200, 'the access token')
    t.equal((await refresh(app, credentials.refresh)).statusCode, 200, 'the refresh token rotates')
  })
})

// The two inputs the fuzzer finds on routes with path parameters, pinned so they read plainly.
// Both are answered by Fastify's router before any hook or error handler of the app runs.
t.test('URL errors of the router use the error shape and name no library', async t => {
  const app = await build(t)
  const { tokens } = await registerAndLogin(app)
  const cases: Array<[string, string, number]> = [
    ['a path parameter longer than maxParamLength (100)', `/auth/sessions/${'a'.repeat(101)}`, 414],
    ['a path parameter with a broken percent-encoding', '/auth/sessions/%E0%A4%A', 400]
  ]
  for (const [name, url, status] of cases) {
    t.test(name, async t => {
      const res = await app.inject({ method: 'DELETE', url, headers: bearer(tokens.access_token) })
      t.equal(res.statusCode, status)
      t.same(Object.keys(res.json()).sort(), ERROR_KEYS, 'exactly {statusCode, code, error, message}')
      t.notMatch(res.body, LIBRARY_DETAIL, 'no library error code')
      t.notMatch(res.body, url, 'the URL is not echoed')
    })
  }
})

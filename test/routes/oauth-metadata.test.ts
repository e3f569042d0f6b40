// GET /.well-known/oauth-authorization-server (RFC 8414): the exact document, where its absolute URLs
// come from (PUBLIC_URL, else an http(s) issuer, else the request), its caching, the issuer of the
// tokens, and under a plugin prefix, that every URL it names answers on the app.
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import tollgate, { type TollgateOptions } from '../../plugins/tollgate.js'
import {
  build, claimsOf, login, pluginOptions, registerAndLogin, type LoggedIn, type TestContext
} from '../helper.js'

type Response = Awaited<ReturnType<FastifyInstance['inject']>>

const CLIENT = { id: 'resource-server', secret: `rs-${randomBytes(24).toString('hex')}` }
const CLIENTS = `${CLIENT.id}:${CLIENT.secret}`
const BASIC = `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`
const METADATA_PATH = '/.well-known/oauth-authorization-server'
const CACHEABLE = 'public, max-age=300'

interface Metadata {
  issuer: string
  jwks_uri: string
  token_endpoint: string
  revocation_endpoint: string
  introspection_endpoint?: string
  [member: string]: unknown
}

/** The whole document for endpoints at `base` (origin, path and prefix), with or without introspection. */
function expectedMetadata (issuer: string, base: string, introspection: boolean): Metadata {
  return {
    issuer,
    jwks_uri: `${base}/.well-known/jwks.json`,
    token_endpoint: `${base}/auth/refresh`,
    token_endpoint_auth_methods_supported: ['none'],
    grant_types_supported: ['refresh_token'],
    response_types_supported: [],
    revocation_endpoint: `${base}/auth/revoke`,
    revocation_endpoint_auth_methods_supported: ['none'],
    ...(introspection && {
      introspection_endpoint: `${base}/auth/introspect`,
      introspection_endpoint_auth_methods_supported: ['client_secret_basic']
    })
  }
}

function getMetadata (app: FastifyInstance, options: { path?: string, headers?: Record<string, string> } = {}) {
  return app.inject({ method: 'GET', url: options.path ?? METADATA_PATH, headers: options.headers ?? {} })
}

/** 200 JSON, exactly `expected`, with `cacheControl`. */
function expectMetadata (t: Test, res: Response, expected: Metadata, cacheControl: string, step: string): Metadata {
  t.equal(res.statusCode, 200, `${step}: 200`)
  t.match(res.headers['content-type'], /^application\/json/, `${step}: JSON`)
  t.equal(res.headers['cache-control'], cacheControl, `${step}: cache-control: ${cacheControl}`)
  const body = res.json() as Metadata
  t.strictSame(body, expected, `${step}: the document`)
  t.strictSame(Object.keys(body).sort(), Object.keys(expected).sort(), `${step}: exactly its members`)
  return body
}

/** The issuer of the document is the exact `iss` of the access and refresh tokens, also after a rotation. */
async function expectIssuerOfTokens (t: Test, app: FastifyInstance, metadata: Metadata, user: LoggedIn, prefix = '') {
  t.equal(claimsOf(user.tokens.access_token).iss, metadata.issuer, 'iss of the access token')
  t.equal(claimsOf(user.tokens.refresh_token).iss, metadata.issuer, 'iss of the refresh token')
  const rotated = await app.inject({ method: 'POST', url: `${prefix}/auth/refresh`, payload: { refresh_token: user.tokens.refresh_token } })
  t.equal(rotated.statusCode, 200, 'a rotation')
  t.equal(claimsOf(rotated.json().access_token).iss, metadata.issuer, 'iss of the rotated access token')
  t.equal(claimsOf(rotated.json().refresh_token).iss, metadata.issuer, 'iss of the rotated refresh token')
}

const pathOf = (url: string) => {
  const parsed = new URL(url)
  return `${parsed.pathname}${parsed.search}`
}

/**
 * Every URL of the document answers on `app` at its path: the JWKS, the refresh grant (form body, as
 * RFC 6749 §6 sends it), revocation and, when named, introspection.
 */
async function expectEndpointsAnswer (t: Test, app: FastifyInstance, metadata: Metadata, a: LoggedIn['tokens'], b: LoggedIn['tokens']) {
  const jwks = await app.inject({ method: 'GET', url: pathOf(metadata.jwks_uri) })
  t.equal(jwks.statusCode, 200, `GET ${pathOf(metadata.jwks_uri)}: 200`)
  t.equal(jwks.json().keys.length, 1, 'jwks_uri: the JWK Set with the signing key')

  const refreshed = await app.inject({
    method: 'POST',
    url: pathOf(metadata.token_endpoint),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: a.refresh_token }).toString()
  })
  t.equal(refreshed.statusCode, 200, `POST ${pathOf(metadata.token_endpoint)}: 200`)
  t.strictSame(Object.keys(refreshed.json()).sort(), ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type'], 'token_endpoint: a token response')

  if (metadata.introspection_endpoint) {
    const active = await app.inject({ method: 'POST', url: pathOf(metadata.introspection_endpoint), headers: { authorization: BASIC }, payload: { token: b.access_token } })
    t.equal(active.statusCode, 200, `POST ${pathOf(metadata.introspection_endpoint)}: 200`)
    t.equal(active.json().active, true, 'introspection_endpoint: a live token is active')
  }

  const revoked = await app.inject({ method: 'POST', url: pathOf(metadata.revocation_endpoint), payload: { token: b.refresh_token } })
  t.equal(revoked.statusCode, 200, `POST ${pathOf(metadata.revocation_endpoint)}: 200`)
  t.equal(revoked.body, '{}', 'revocation_endpoint: {}')

  if (metadata.introspection_endpoint) {
    const inactive = await app.inject({ method: 'POST', url: pathOf(metadata.introspection_endpoint), headers: { authorization: BASIC }, payload: { token: b.access_token } })
    t.equal(inactive.body, '{"active":false}', 'introspection_endpoint: the revoked session is inactive')
  }
}

t.test('an http(s) issuer: URLs start with it, the document is cacheable, the Host header is ignored', async t => {
  const issuer = 'https://id.example.test'
  const app = await build(t, { config: { JWT_ISSUER: issuer, INTROSPECTION_CLIENTS: CLIENTS } })
  const expected = expectedMetadata(issuer, issuer, true)
  const metadata = expectMetadata(t, await getMetadata(app), expected, CACHEABLE, 'default Host')
  expectMetadata(t, await getMetadata(app, { headers: { host: 'attacker.example:8080' } }), expected, CACHEABLE, 'a foreign Host')
  expectMetadata(t, await getMetadata(app, { headers: { host: 'attacker.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' } }), expected, CACHEABLE, 'forwarded headers')

  const user = await registerAndLogin(app)
  await expectIssuerOfTokens(t, app, metadata, user)
  await expectEndpointsAnswer(t, app, metadata, (await login(app, user.email, user.password)), (await login(app, user.email, user.password)))
})

t.test('an issuer with a path (and a trailing slash): the issuer is kept exactly, URLs under its path', async t => {
  const cases: Array<[string, string]> = [
    ['https://example.test/tenants/acme/', 'https://example.test/tenants/acme'],
    ['https://example.test/tenants/acme', 'https://example.test/tenants/acme'],
    ['http://127.0.0.1:3000', 'http://127.0.0.1:3000']
  ]
  for (const [issuer, base] of cases) {
    const app = await build(t, { config: { JWT_ISSUER: issuer } })
    const metadata = expectMetadata(t, await getMetadata(app), expectedMetadata(issuer, base, false), CACHEABLE, issuer)
    t.equal(metadata.issuer, issuer, `${issuer}: the issuer exactly as configured`)
    const user = await registerAndLogin(app)
    await expectIssuerOfTokens(t, app, metadata, user)
  }
})

t.test('PUBLIC_URL: URLs start with it, whatever the issuer; the issuer stays JWT_ISSUER', async t => {
  const publicUrl = 'https://auth.example.test/base'
  for (const issuer of ['https://issuer.example.test', 'tollgate', 'urn:example:tollgate']) {
    const app = await build(t, { config: { JWT_ISSUER: issuer, PUBLIC_URL: publicUrl, INTROSPECTION_CLIENTS: CLIENTS } })
    const expected = expectedMetadata(issuer, publicUrl, true)
    const metadata = expectMetadata(t, await getMetadata(app), expected, CACHEABLE, `issuer ${issuer}`)
    expectMetadata(t, await getMetadata(app, { headers: { host: 'attacker.example' } }), expected, CACHEABLE, `issuer ${issuer}, a foreign Host`)
    const user = await registerAndLogin(app)
    await expectIssuerOfTokens(t, app, metadata, user)
  }

  // The paths of PUBLIC_URL itself are the proxy's business: the app answers at its own paths.
  const app = await build(t, { config: { PUBLIC_URL: 'https://auth.example.test', INTROSPECTION_CLIENTS: CLIENTS } })
  const metadata = expectMetadata(t, await getMetadata(app), expectedMetadata('tollgate', 'https://auth.example.test', true), CACHEABLE, 'PUBLIC_URL without a path')
  const user = await registerAndLogin(app)
  await expectEndpointsAnswer(t, app, metadata, (await login(app, user.email, user.password)), (await login(app, user.email, user.password)))
})

t.test('neither: URLs from the request\'s protocol and Host, never cached', async t => {
  for (const issuer of ['tollgate', 'urn:example:tollgate', 'ftp://files.example.test']) {
    const app = await build(t, { config: { JWT_ISSUER: issuer, INTROSPECTION_CLIENTS: CLIENTS } })
    const first = expectMetadata(t, await getMetadata(app, { headers: { host: 'auth.example.test:8443' } }),
      expectedMetadata(issuer, 'http://auth.example.test:8443', true), 'no-store', `issuer ${issuer}, one Host`)
    // Nothing of the first answer is kept for the next one.
    expectMetadata(t, await getMetadata(app, { headers: { host: 'other.example.test' } }),
      expectedMetadata(issuer, 'http://other.example.test', true), 'no-store', `issuer ${issuer}, another Host`)
    const user = await registerAndLogin(app)
    await expectIssuerOfTokens(t, app, first, user)
  }

  const app = await build(t, { config: { INTROSPECTION_CLIENTS: CLIENTS } })
  // Without TRUST_PROXY, forwarded headers are the client's word and are ignored.
  expectMetadata(t, await getMetadata(app, { headers: { host: 'auth.example.test', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' } }),
    expectedMetadata('tollgate', 'http://auth.example.test', true), 'no-store', 'untrusted forwarded headers')
  const metadata = expectMetadata(t, await getMetadata(app, { headers: { host: '127.0.0.1:3000' } }),
    expectedMetadata('tollgate', 'http://127.0.0.1:3000', true), 'no-store', 'a loopback Host')
  const user = await registerAndLogin(app)
  await expectEndpointsAnswer(t, app, metadata, (await login(app, user.email, user.password)), (await login(app, user.email, user.password)))
})

t.test('behind a trusted proxy: the forwarded protocol and host', async t => {
  const app = await build(t, { config: { TRUST_PROXY: '127.0.0.1' } })
  const res = await getMetadata(app, { headers: { host: 'internal:3000', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'id.example.test' } })
  expectMetadata(t, res, expectedMetadata('tollgate', 'https://id.example.test', false), 'no-store', 'forwarded by a trusted proxy')
})

t.test('introspection is named only when INTROSPECTION_CLIENTS is set', async t => {
  const issuer = 'https://id.example.test'
  const without = await build(t, { config: { JWT_ISSUER: issuer } })
  const body = expectMetadata(t, await getMetadata(without), expectedMetadata(issuer, issuer, false), CACHEABLE, 'without clients')
  t.notOk('introspection_endpoint' in body, 'no introspection_endpoint')
  t.notOk('introspection_endpoint_auth_methods_supported' in body, 'no introspection auth methods')
  t.equal((await without.inject({ method: 'POST', url: '/auth/introspect', headers: { authorization: BASIC }, payload: { token: 'x' } })).statusCode, 404, 'and no endpoint')

  const emptySetting = await build(t, { config: { JWT_ISSUER: issuer, INTROSPECTION_CLIENTS: '' } })
  expectMetadata(t, await getMetadata(emptySetting), expectedMetadata(issuer, issuer, false), CACHEABLE, 'INTROSPECTION_CLIENTS empty')

  const withClients = await build(t, { config: { JWT_ISSUER: issuer, INTROSPECTION_CLIENTS: CLIENTS } })
  expectMetadata(t, await getMetadata(withClients), expectedMetadata(issuer, issuer, true), CACHEABLE, 'with clients')
})

// ---- The plugin in a host app, under a prefix --------------------------------------------------

/** A bare host (`Fastify()`) with tollgate registered, inside a plugin of its own when `outerPrefix` is set. */
async function host (t: TestContext, options: TollgateOptions, outerPrefix?: string): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  if (outerPrefix) {
    await app.register(async function hostScope (scope) { await scope.register(tollgate, options) }, { prefix: outerPrefix })
  } else {
    await app.register(tollgate, options)
  }
  await app.ready()
  return app
}

/** The app as the helpers that call `/auth/…` see it under `prefix`. */
function mountedAt (app: FastifyInstance, prefix: string): FastifyInstance {
  const inject = (options: InjectOptions) => app.inject({ ...options, url: `${prefix}${options.url as string}` })
  return { inject } as unknown as FastifyInstance
}

t.test('under prefix /id: every URL includes /id and answers on the app', async t => {
  t.test('with an issuer URL whose path is the prefix itself (RFC 8414 §3): /id once, not twice', async t => {
    const issuer = 'https://id.example.test/id'
    const app = await host(t, await pluginOptions(t, { prefix: '/id', issuer }))
    const metadata = expectMetadata(t, await getMetadata(app, { path: `/id${METADATA_PATH}` }),
      expectedMetadata(issuer, issuer, false), CACHEABLE, 'issuer URL ending in /id')
    t.equal(metadata.token_endpoint, 'https://id.example.test/id/auth/refresh')
  })

  t.test('with an issuer URL', async t => {
    const issuer = 'https://id.example.test'
    const app = await host(t, await pluginOptions(t, { prefix: '/id', issuer, introspectionClients: CLIENTS }))
    const metadata = expectMetadata(t, await getMetadata(app, { path: `/id${METADATA_PATH}` }),
      expectedMetadata(issuer, `${issuer}/id`, true), CACHEABLE, 'issuer URL, /id')
    for (const url of [metadata.jwks_uri, metadata.token_endpoint, metadata.revocation_endpoint, metadata.introspection_endpoint]) {
      t.ok(pathOf(url as string).startsWith('/id/'), `${url} is under /id`)
    }
    const id = mountedAt(app, '/id')
    const user = await registerAndLogin(id)
    await expectIssuerOfTokens(t, app, metadata, user, '/id')
    await expectEndpointsAnswer(t, app, metadata, await login(id, user.email, user.password), await login(id, user.email, user.password))

    const unprefixed = await getMetadata(app)
    t.equal(unprefixed.statusCode, 404, 'not served without the prefix')
  })

  t.test('with PUBLIC_URL', async t => {
    const app = await host(t, await pluginOptions(t, { prefix: '/id', publicUrl: 'https://example.test/auth', introspectionClients: CLIENTS }))
    const metadata = expectMetadata(t, await getMetadata(app, { path: `/id${METADATA_PATH}` }),
      expectedMetadata('tollgate', 'https://example.test/auth/id', true), CACHEABLE, 'PUBLIC_URL, /id')
    const id = mountedAt(app, '/id')
    const user = await registerAndLogin(id)
    // The proxy strips /auth; the app answers at the rest of the path.
    const local = { ...metadata } as Metadata
    for (const key of ['jwks_uri', 'token_endpoint', 'revocation_endpoint', 'introspection_endpoint'] as const) {
      local[key] = (metadata[key] as string).replace('https://example.test/auth', 'http://internal')
    }
    await expectEndpointsAnswer(t, app, local, await login(id, user.email, user.password), await login(id, user.email, user.password))
  })

  t.test('from the request', async t => {
    const app = await host(t, await pluginOptions(t, { prefix: '/id', introspectionClients: CLIENTS }))
    const metadata = expectMetadata(t, await getMetadata(app, { path: `/id${METADATA_PATH}`, headers: { host: 'auth.example.test' } }),
      expectedMetadata('tollgate', 'http://auth.example.test/id', true), 'no-store', 'request-derived, /id')
    const id = mountedAt(app, '/id')
    const user = await registerAndLogin(id)
    await expectIssuerOfTokens(t, app, metadata, user, '/id')
    await expectEndpointsAnswer(t, app, metadata, await login(id, user.email, user.password), await login(id, user.email, user.password))
  })

  t.test('inside a host plugin of its own under /api', async t => {
    const issuer = 'https://id.example.test'
    const app = await host(t, await pluginOptions(t, { prefix: '/id', issuer, introspectionClients: CLIENTS }), '/api')
    const metadata = expectMetadata(t, await getMetadata(app, { path: `/api/id${METADATA_PATH}` }),
      expectedMetadata(issuer, `${issuer}/api/id`, true), CACHEABLE, 'issuer URL, /api/id')
    const id = mountedAt(app, '/api/id')
    const user = await registerAndLogin(id)
    await expectEndpointsAnswer(t, app, metadata, await login(id, user.email, user.password), await login(id, user.email, user.password))
  })
})

t.test('without a prefix in a host: the URLs have none', async t => {
  const issuer = 'https://id.example.test'
  const app = await host(t, await pluginOptions(t, { issuer }))
  const metadata = expectMetadata(t, await getMetadata(app), expectedMetadata(issuer, issuer, false), CACHEABLE, 'no prefix')
  const user = await registerAndLogin(app)
  await expectEndpointsAnswer(t, app, metadata, await login(app, user.email, user.password), await login(app, user.email, user.password))
})

// The OpenAPI document in cookie mode: the refresh cookie and the CSRF header as security schemes on
// the routes that take them, the cookies each response sets or expires, the 403 of the CSRF check,
// and token responses without refresh_token. `npm run lint:openapi` lints this document too.
import t from 'tap'
import { build } from '../helper.js'
import { CSRF_COOKIE, REFRESH_COOKIE } from './support.js'

interface Response {
  description?: string
  headers?: Record<string, { description?: string }>
  content?: Record<string, { schema?: { $ref?: string, anyOf?: unknown[], properties?: Record<string, unknown>, required?: string[] } }>
}
interface Operation {
  security?: Array<Record<string, string[]>>
  requestBody?: { required?: boolean }
  responses: Record<string, Response>
}

const COOKIE = { refreshCookie: [], csrfToken: [] }

t.test('cookie mode: the document describes the cookies and the CSRF check', async t => {
  const app = await build(t, { config: { REFRESH_COOKIE: true } })
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  const op = (path: string): Operation => doc.paths[path].post

  t.strictSame(doc.components.securitySchemes.refreshCookie, {
    type: 'apiKey', in: 'cookie', name: REFRESH_COOKIE, description: doc.components.securitySchemes.refreshCookie.description
  }, 'the refresh cookie: an apiKey in a cookie')
  t.has(doc.components.securitySchemes.csrfToken, { type: 'apiKey', in: 'header', name: 'X-CSRF-Token' }, 'the CSRF token: an apiKey in a header')
  t.match(doc.components.securitySchemes.csrfToken.description, CSRF_COOKIE, 'which says where its value comes from')

  t.strictSame(op('/auth/refresh').security, [{}, COOKIE], 'refresh: a body token (no credentials), or the cookie with the CSRF header')
  t.strictSame(op('/auth/revoke').security, [{}, COOKIE], 'revoke: likewise')
  t.strictSame(op('/auth/logout').security, [{ bearerAuth: [] }, { bearerAuth: [], ...COOKIE }], 'logout: the access token, with or without the cookie')
  t.strictSame(op('/auth/login').security, [], 'login: public')
  for (const path of ['/auth/refresh', '/auth/revoke', '/auth/logout']) {
    t.equal(op(path).requestBody?.required, false, `${path}: the body is optional`)
    const forbidden = op(path).responses['403']
    t.equal(forbidden?.content?.['application/json']?.schema?.$ref, '#/components/schemas/Error', `${path}: 403 is an Error`)
    t.match(forbidden?.description, /CSRF_CHECK_FAILED/, `${path}: 403 names its code`)
  }
  t.ok(doc.components.schemas.Error.properties.code.enum.includes('CSRF_CHECK_FAILED'), 'Error.code lists CSRF_CHECK_FAILED')

  const login = op('/auth/login').responses['200'] as Response
  const loginBody = login.content?.['application/json']?.schema
  t.notOk(loginBody?.properties?.refresh_token, 'login 200: no refresh_token')
  t.strictSame(loginBody?.required?.slice().sort(), ['access_token', 'expires_in', 'refresh_expires_in', 'token_type'])
  for (const header of ['Set-Cookie', 'X-CSRF-Token', 'Cache-Control', 'Pragma']) t.ok(login.headers?.[header], `login 200 documents ${header}`)

  const refreshed = op('/auth/refresh').responses['200'] as Response
  t.equal(refreshed.content?.['application/json']?.schema?.anyOf?.length, 2, 'refresh 200: the cookie form or, for a body token, the TokenResponse')
  t.ok(refreshed.headers?.['Set-Cookie'], 'refresh 200 documents Set-Cookie')
  t.match(op('/auth/refresh').responses['400']?.headers?.['Set-Cookie']?.description, /expired/, 'refresh 400 documents the expired cookies')
  t.ok(op('/auth/logout').responses['204']?.headers?.['Set-Cookie'], 'logout 204 documents the expired cookies')
  t.notOk(op('/auth/logout').responses['204']?.content, 'and still has no body')
  t.ok(op('/auth/logout-all').responses['204']?.headers?.['Set-Cookie'], 'logout-all 204 too')
  t.ok(op('/auth/revoke').responses['200']?.headers?.['Set-Cookie'], 'revoke 200 too')
})

t.test('cookie mode off: nothing of it in the document', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  const doc = res.json()
  t.strictSame(Object.keys(doc.components.securitySchemes).sort(), ['bearerAuth', 'introspectionClient'])
  t.notMatch(res.body, /Set-Cookie|X-CSRF-Token|tollgate_refresh/, 'no cookie, no CSRF header')
  t.strictSame(doc.paths['/auth/refresh'].post.security, [])
  t.equal(doc.paths['/auth/refresh'].post.responses['200'].content['application/json'].schema.$ref, '#/components/schemas/TokenResponse')
  t.notOk(doc.paths['/auth/refresh'].post.responses['403'], 'no 403')
})

/*
 * A client program written only against the types that openapi-typescript generates from the live
 * OpenAPI document (./schema.d.ts, next to a copy of this file), through openapi-fetch. It has no
 * `as` and no `any`: a spec change that breaks a client breaks its compilation, and the
 * typed-client test (typed-client.test.ts) compiles it with `strict` before it runs it.
 *
 * This file is excluded from the root tsconfig: ./schema.d.ts exists only in the test's temporary
 * directory, generated from the running app's document. A checked-in stub would either go stale or
 * be loose enough to hide the very breakage this program is here to catch.
 *
 *   node --import tsx flow.ts http://127.0.0.1:PORT
 *   (INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET name a client of INTROSPECTION_CLIENTS)
 *
 * Prints one line per step; exits non-zero at the first step that goes wrong.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import createClient from 'openapi-fetch'
import type { components, paths } from './schema.js'

type ErrorCode = components['schemas']['Error']['code']

// Compile-time guard: `code` must stay an enum of literals. Were it widened to `string`, the
// comparison with 'INVALID_TOKEN' below would typecheck whatever the server sends.
type IsLiteralUnion<T> = string extends T ? false : true
const ERROR_CODE_IS_ENUM: IsLiteralUnion<ErrorCode> = true

/** Per request, so that a hung server fails the step rather than the whole test's timeout. */
const REQUEST_TIMEOUT_MS = 10_000

export interface FlowOptions {
  baseUrl: string
  introspectionClient: { id: string, secret: string }
  /** Where the step lines go. */
  log?: (line: string) => void
}

/** Either arm of an openapi-fetch result, with its typed data or error. */
type Result<D, E> =
  | { data: D, error?: never, response: Response }
  | { data?: never, error: E, response: Response }

/** The body of a result that must have `status`; any other answer fails `step`, showing the body. */
function expectData<D, E> (step: string, status: number, result: Result<D, E>): NonNullable<D> {
  const { data, error, response } = result
  assert.equal(response.status, status, `${step}: status (body ${JSON.stringify(error ?? data)})`)
  if (data === undefined || data === null) throw new assert.AssertionError({ message: `${step}: no body` })
  return data
}

/** The typed error body of a result that must fail with `status`. */
function expectError<D, E> (step: string, status: number, result: Result<D, E>): NonNullable<E> {
  const { data, error, response } = result
  assert.equal(response.status, status, `${step}: status (body ${JSON.stringify(error ?? data)})`)
  if (error === undefined || error === null) throw new assert.AssertionError({ message: `${step}: no error body` })
  return error
}

/** application/x-www-form-urlencoded encoding of one value, as RFC 6749 §2.3.1 asks of Basic credentials. */
const formEncode = (value: string) => new URLSearchParams([['', value]]).toString().slice(1)

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

export async function runFlow (options: FlowOptions): Promise<void> {
  const { baseUrl, introspectionClient } = options
  const log = options.log ?? ((line: string) => console.log(line))
  // This program only ever talks to an app on this machine.
  assert.equal(new URL(baseUrl).hostname, '127.0.0.1', 'baseUrl must be on 127.0.0.1')
  assert.equal(ERROR_CODE_IS_ENUM, true)

  const client = createClient<paths>({
    baseUrl,
    fetch: request => fetch(request, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  })
  const basic = {
    authorization: `Basic ${Buffer.from(`${formEncode(introspectionClient.id)}:${formEncode(introspectionClient.secret)}`).toString('base64')}`
  }
  const email = `typed-client-${randomUUID()}@example.com`
  const password = 'correct horse battery staple'

  const user = expectData('register', 201, await client.POST('/auth/register', { body: { email, password, name: 'Typed Client' } }))
  assert.equal(user.email, email)
  assert.equal(user.name, 'Typed Client')
  log(`register ${user.id}`)

  const first = expectData('login', 200, await client.POST('/auth/login', { body: { email, password } }))
  assert.equal(first.token_type, 'Bearer')
  assert.ok(first.access_token.length > 0 && first.refresh_token.length > 0, 'login: tokens')
  assert.ok(first.expires_in > 0 && first.refresh_expires_in > 0, 'login: lifetimes')
  log('login')

  const me = expectData('getCurrentUser', 200, await client.GET('/users/me', { headers: bearer(first.access_token) }))
  assert.equal(me.id, user.id)
  assert.equal(me.email, email)
  assert.ok(!Number.isNaN(Date.parse(me.created_at)), 'getCurrentUser: created_at is a date')
  log('getCurrentUser')

  const viaJson = expectData('refresh (JSON)', 200, await client.POST('/auth/refresh', {
    body: { refresh_token: first.refresh_token, grant_type: 'refresh_token' }
  }))
  assert.notEqual(viaJson.refresh_token, first.refresh_token, 'refresh (JSON): the refresh token rotates')
  log('refresh json')

  // The same operation through its form-urlencoded request body (the RFC 6749 §6 shape).
  const viaForm = expectData('refresh (form)', 200, await client.POST('/auth/refresh', {
    body: { refresh_token: viaJson.refresh_token, grant_type: 'refresh_token' },
    bodySerializer: body => new URLSearchParams({ refresh_token: body.refresh_token, grant_type: 'refresh_token' }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' }
  }))
  assert.notEqual(viaForm.refresh_token, viaJson.refresh_token, 'refresh (form): the refresh token rotates')
  assert.equal(viaForm.token_type, 'Bearer')
  log('refresh form')
  const access = viaForm.access_token

  // A second session (another device) to revoke by its refresh token.
  const other = expectData('login (second session)', 200, await client.POST('/auth/login', { body: { email, password } }))
  const sessions = expectData('listSessions', 200, await client.GET('/auth/sessions', { headers: bearer(access) }))
  assert.equal(sessions.length, 2, 'listSessions: both sessions')
  const current = sessions.filter(session => session.current)
  assert.equal(current.length, 1, 'listSessions: exactly one current session')
  for (const session of sessions) {
    assert.ok(Date.parse(session.expires_at) > Date.parse(session.created_at), 'listSessions: expires after it was created')
  }
  log('listSessions 2')

  const revoked = expectData('revokeToken', 200, await client.POST('/auth/revoke', {
    body: { token: other.refresh_token, token_type_hint: 'refresh_token' }
  }))
  assert.deepEqual(revoked, {})
  const left = expectData('listSessions (after revoke)', 200, await client.GET('/auth/sessions', { headers: bearer(access) }))
  assert.deepEqual(left.map(session => session.id), current.map(session => session.id), 'revokeToken: only the current session is left')
  log('revokeToken')

  const live = expectData('introspectToken', 200, await client.POST('/auth/introspect', {
    body: { token: access },
    headers: basic
  }))
  assert.equal(live.active, true, 'introspectToken: active before logout')
  assert.equal(live.sub, user.id)
  assert.equal(live.token_type, 'Bearer')
  log('introspect active')

  const loggedOut = await client.POST('/auth/logout', { headers: bearer(access) })
  assert.equal(loggedOut.response.status, 204, 'logout: 204')
  log('logout')

  const refused = expectError('getCurrentUser (after logout)', 401, await client.GET('/users/me', { headers: bearer(access) }))
  const code: ErrorCode = refused.code
  assert.equal(code === 'INVALID_TOKEN', true, `getCurrentUser (after logout): code ${code}`)
  assert.equal(refused.statusCode, 401)
  log(`getCurrentUser 401 ${code}`)

  const dead = expectData('introspectToken (after logout)', 200, await client.POST('/auth/introspect', {
    body: { token: access },
    headers: basic
  }))
  assert.deepEqual(dead, { active: false }, 'introspectToken: inactive after logout, and nothing else')
  log('introspect inactive')
}

// Run as a program: the base URL from the first argument (or TOLLGATE_BASE_URL).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const baseUrl = process.argv[2] ?? process.env.TOLLGATE_BASE_URL
  const id = process.env.INTROSPECTION_CLIENT_ID
  const secret = process.env.INTROSPECTION_CLIENT_SECRET
  if (!baseUrl || !id || !secret) {
    console.error('usage: INTROSPECTION_CLIENT_ID=… INTROSPECTION_CLIENT_SECRET=… node --import tsx flow.ts http://127.0.0.1:PORT')
    process.exit(2)
  }
  await runFlow({ baseUrl, introspectionClient: { id, secret } })
  console.log('flow complete')
}

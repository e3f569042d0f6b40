// POST /auth/revoke (RFC 7009): what ends, what stays, and that nothing else is ever a 2xx that lies.
// Every check of "revoked" or "untouched" reads the allowlist (tokenStore.liveRefreshJtis), the
// sessions list of another session of the same user, and the access and refresh tokens themselves.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { forgeAccessToken, forgeRefreshToken, freshKeySigner, hmacSigner, noSigner, nowSeconds } from '../fixtures.js'
import { bearer, claimsOf, login, registerAndLogin, type LoggedIn, type TestApp, type TokenPair } from '../helper.js'
import {
  buildWithStore, expectAccessRevoked, expectAccessWorks, expectOAuthError, expectRefreshRejected, expectRefreshWorks,
  jtiOf, sidOf, userKey, type Store
} from '../flows/support.js'
import { startRedisServer } from '../faults/redis-server.js'
import { eventually, expectUnavailable } from '../faults/support.js'

type Response = Awaited<ReturnType<FastifyInstance['inject']>>

const FORM = 'application/x-www-form-urlencoded'
const RATE_LIMITED = { statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests', message: 'Too many requests; retry after the time in Retry-After' }

/** POST /auth/revoke with a JSON body (any value, so hostile bodies can be sent as they are). */
function revokeJson (app: FastifyInstance, body: unknown, remoteAddress?: string) {
  return app.inject({ method: 'POST', url: '/auth/revoke', payload: body as Record<string, unknown>, ...(remoteAddress && { remoteAddress }) })
}

/** POST /auth/revoke with an application/x-www-form-urlencoded body, fields in order (repeats allowed). */
function revokeForm (app: FastifyInstance, fields: Array<[string, string]>, remoteAddress?: string) {
  return app.inject({
    method: 'POST',
    url: '/auth/revoke',
    headers: { 'content-type': FORM },
    payload: new URLSearchParams(fields).toString(),
    ...(remoteAddress && { remoteAddress })
  })
}

/** RFC 7009 §2.2: 200 with exactly `{}` as JSON. */
function expectRevokeOk (t: Test, res: Response, step: string) {
  t.equal(res.statusCode, 200, `${step}: 200`)
  t.match(res.headers['content-type'], /^application\/json/, `${step}: JSON`)
  t.equal(res.body, '{}', `${step}: the body is exactly {}`)
  t.notOk('retry-after' in res.headers, `${step}: no Retry-After`)
  t.notOk('www-authenticate' in res.headers, `${step}: no challenge (no client authentication)`)
}

/** The sids that GET /auth/sessions lists to `witness`, sorted. */
async function listedSids (app: FastifyInstance, witness: TokenPair): Promise<string[]> {
  const res = await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(witness.access_token) })
  if (res.statusCode !== 200) throw new Error(`GET /auth/sessions: ${res.statusCode} ${res.body}`)
  return (res.json() as Array<{ id: string }>).map(s => s.id).sort()
}

/**
 * The user's live sessions are exactly `live`: the allowlist holds exactly their refresh jtis,
 * GET /auth/sessions (asked by the first of them) lists exactly their sids, and each access token works.
 */
async function expectLiveSessions (t: Test, app: TestApp, userId: string, live: TokenPair[], step: string) {
  const jtis = (await app.tollgate.tokenStore.liveRefreshJtis(userId)).sort()
  t.strictSame(jtis, live.map(s => jtiOf(s.refresh_token)).sort(), `${step}: the allowlist holds exactly the live refresh jtis`)
  if (live.length > 0) {
    t.strictSame(await listedSids(app, live[0] as TokenPair), live.map(s => sidOf(s.refresh_token)).sort(), `${step}: GET /auth/sessions lists exactly the live sessions`)
  }
  for (const [i, session] of live.entries()) await expectAccessWorks(t, app, session.access_token, userId, `${step}: live session ${i}`)
}

/** The session of `ended` is over: not on the allowlist, not listed to `witness`, its tokens refused. */
async function expectSessionEnded (t: Test, app: TestApp, userId: string, ended: TokenPair, witness: TokenPair | undefined, step: string) {
  const jtis = await app.tollgate.tokenStore.liveRefreshJtis(userId)
  t.notOk(jtis.includes(jtiOf(ended.refresh_token)), `${step}: its refresh jti left the allowlist`)
  if (witness) t.notOk((await listedSids(app, witness)).includes(sidOf(ended.refresh_token)), `${step}: gone from GET /auth/sessions of the other session`)
  await expectAccessRevoked(t, app, ended.access_token, `${step}: its access token`)
  await expectRefreshRejected(t, app, ended.refresh_token, `${step}: its refresh token`)
}

/** The access token's own revocation mark: `<prefix>:{uid}:at-revoked:<jti>`, kept until the token expires. */
async function expectAccessTokenRevoked (t: Test, store: Store, userId: string, accessToken: string, step: string) {
  const claims = claimsOf(accessToken) as { jti: string, exp: number }
  const key = userKey(store, userId, `at-revoked:${claims.jti}`)
  t.equal(await store.redis.exists(key), 1, `${step}: the access token itself is revoked`)
  t.equal(Number(await store.redis.call('PEXPIRETIME', key)), claims.exp * 1000, `${step}: until the access token expires`)
}

async function expectAccessTokenNotMarked (t: Test, store: Store, userId: string, accessToken: string, step: string) {
  t.equal(await store.redis.exists(userKey(store, userId, `at-revoked:${jtiOf(accessToken)}`)), 0, `${step}: no revocation mark for the access token`)
}

/** A user with three sessions, and another user with one. */
async function population (app: TestApp) {
  const user = await registerAndLogin(app)
  const b = await login(app, user.email, user.password)
  const c = await login(app, user.email, user.password)
  const stranger = await registerAndLogin(app)
  return { user, a: user.tokens, b, c, stranger }
}

async function expectStrangerUntouched (t: Test, app: TestApp, stranger: LoggedIn, step: string) {
  await expectLiveSessions(t, app, stranger.userId, [stranger.tokens], `${step}: the other user`)
}

t.test('a refresh token ends its session, and only it (JSON, no hint)', async t => {
  const { app, store } = await buildWithStore(t)
  const { user, a, b, c, stranger } = await population(app)
  await expectLiveSessions(t, app, user.userId, [a, b, c], 'before')

  expectRevokeOk(t, await revokeJson(app, { token: a.refresh_token }), 'revoke A by its refresh token')
  await expectLiveSessions(t, app, user.userId, [b, c], 'after revoking A')
  await expectSessionEnded(t, app, user.userId, a, b, 'A')
  await expectAccessTokenNotMarked(t, store, user.userId, a.access_token, 'A (revoked by its refresh token)')
  await expectStrangerUntouched(t, app, stranger, 'after revoking A')

  // The other sessions keep working in every way, rotation included.
  const b2 = await expectRefreshWorks(t, app, b.refresh_token, 'B rotates')
  await expectLiveSessions(t, app, user.userId, [b2, c], 'after B rotated')

  // Revoking again, or revoking the session's access token now, is 200 and changes nothing.
  expectRevokeOk(t, await revokeJson(app, { token: a.refresh_token }), 'the same refresh token again')
  expectRevokeOk(t, await revokeJson(app, { token: a.access_token, token_type_hint: 'access_token' }), 'the ended session\'s access token')
  await expectLiveSessions(t, app, user.userId, [b2, c], 'after revoking A again')
  await expectStrangerUntouched(t, app, stranger, 'at the end')
})

t.test('an access token ends its session and is itself revoked (JSON, hint access_token)', async t => {
  const { app, store } = await buildWithStore(t)
  const { user, a, b, c, stranger } = await population(app)

  expectRevokeOk(t, await revokeJson(app, { token: b.access_token, token_type_hint: 'access_token' }), 'revoke B by its access token')
  await expectLiveSessions(t, app, user.userId, [a, c], 'after revoking B')
  await expectSessionEnded(t, app, user.userId, b, a, 'B')
  await expectAccessTokenRevoked(t, store, user.userId, b.access_token, 'B')
  await expectStrangerUntouched(t, app, stranger, 'after revoking B')

  expectRevokeOk(t, await revokeJson(app, { token: b.access_token, token_type_hint: 'access_token' }), 'the same access token again')
  await expectLiveSessions(t, app, user.userId, [a, c], 'after revoking B again')

  // The user's last sessions: revoke them all, one by one; the user can log in again at once.
  expectRevokeOk(t, await revokeJson(app, { token: c.access_token }), 'revoke C by its access token, no hint')
  await expectAccessTokenRevoked(t, store, user.userId, c.access_token, 'C')
  await expectSessionEnded(t, app, user.userId, c, a, 'C')
  expectRevokeOk(t, await revokeJson(app, { token: a.refresh_token, token_type_hint: 'refresh_token' }), 'revoke A by its refresh token')
  await expectSessionEnded(t, app, user.userId, a, undefined, 'A')
  await expectLiveSessions(t, app, user.userId, [], 'no session is left')
  const fresh = await login(app, user.email, user.password)
  await expectLiveSessions(t, app, user.userId, [fresh], 'a new login')
  await expectStrangerUntouched(t, app, stranger, 'at the end')
})

t.test('form bodies (application/x-www-form-urlencoded), as RFC 7009 §2.1 sends them', async t => {
  const { app, store } = await buildWithStore(t)
  const { user, a, b, c, stranger } = await population(app)

  expectRevokeOk(t, await revokeForm(app, [['token', a.refresh_token], ['token_type_hint', 'refresh_token']]), 'refresh token, hint refresh_token')
  await expectSessionEnded(t, app, user.userId, a, c, 'A')
  await expectLiveSessions(t, app, user.userId, [b, c], 'after A')

  expectRevokeOk(t, await revokeForm(app, [['token', b.access_token], ['token_type_hint', 'access_token']]), 'access token, hint access_token')
  await expectSessionEnded(t, app, user.userId, b, c, 'B')
  await expectAccessTokenRevoked(t, store, user.userId, b.access_token, 'B')
  await expectLiveSessions(t, app, user.userId, [c], 'after B')

  // A public client may send its client_id (RFC 7009 §2.1 with RFC 6749 §2.3): nothing changes.
  const d = await login(app, user.email, user.password)
  expectRevokeOk(t, await revokeForm(app, [['token', d.refresh_token], ['client_id', 'my-spa']]), 'refresh token, no hint, a client_id')
  await expectSessionEnded(t, app, user.userId, d, c, 'D')
  await expectLiveSessions(t, app, user.userId, [c], 'after D')

  // Form bodies with a charset parameter are form bodies too.
  const e = await login(app, user.email, user.password)
  const withCharset = await app.inject({
    method: 'POST',
    url: '/auth/revoke',
    headers: { 'content-type': `${FORM}; charset=UTF-8` },
    payload: new URLSearchParams({ token: e.access_token }).toString()
  })
  expectRevokeOk(t, withCharset, 'form with charset')
  await expectSessionEnded(t, app, user.userId, e, c, 'E')
  await expectLiveSessions(t, app, user.userId, [c], 'at the end')
  await expectStrangerUntouched(t, app, stranger, 'at the end')
})

t.test('the hint only orders the attempts: a wrong or unknown hint still revokes', async t => {
  const { app, store } = await buildWithStore(t)
  const user = await registerAndLogin(app)
  const sessions = [user.tokens]
  for (let i = 0; i < 6; i++) sessions.push(await login(app, user.email, user.password))
  const [witness, s1, s2, s3, s4, s5, s6] = sessions as [TokenPair, TokenPair, TokenPair, TokenPair, TokenPair, TokenPair, TokenPair]

  const cases: Array<[string, TokenPair, 'refresh' | 'access', (token: string) => Promise<Response>]> = [
    ['refresh token with hint access_token (JSON)', s1, 'refresh', token => revokeJson(app, { token, token_type_hint: 'access_token' })],
    ['access token with hint refresh_token (JSON)', s2, 'access', token => revokeJson(app, { token, token_type_hint: 'refresh_token' })],
    ['refresh token with hint access_token (form)', s3, 'refresh', token => revokeForm(app, [['token', token], ['token_type_hint', 'access_token']])],
    ['access token with hint refresh_token (form)', s4, 'access', token => revokeForm(app, [['token', token], ['token_type_hint', 'refresh_token']])],
    ['refresh token with an unknown hint', s5, 'refresh', token => revokeJson(app, { token, token_type_hint: 'id_token' })],
    ['access token with an empty hint', s6, 'access', token => revokeForm(app, [['token', token], ['token_type_hint', '']])]
  ]
  const live = [...sessions]
  for (const [name, session, kind, send] of cases) {
    expectRevokeOk(t, await send(kind === 'refresh' ? session.refresh_token : session.access_token), name)
    live.splice(live.indexOf(session), 1)
    await expectSessionEnded(t, app, user.userId, session, witness, name)
    if (kind === 'access') await expectAccessTokenRevoked(t, store, user.userId, session.access_token, name)
    await expectLiveSessions(t, app, user.userId, live, `after: ${name}`)
  }
  t.strictSame(live, [witness], 'only the witness session is left')
})

t.test('invalid, unknown, expired, forged and already revoked tokens: 200 {} and nothing revoked', async t => {
  const { app, store } = await buildWithStore(t)
  const { user, a, b, c, stranger } = await population(app)
  const ended = await login(app, user.email, user.password)
  expectRevokeOk(t, await revokeJson(app, { token: ended.refresh_token }), 'a session to revoke twice')
  const now = nowSeconds()
  const otherSecret = randomBytes(32).toString('base64url')

  // Each is made from a live session's token (same sub and sid; refresh forgeries keep the jti), so a
  // token that got through verification would end that session.
  const hostile: Array<[string, string]> = [
    ['garbage', 'not-a-token'],
    ['three dots', '..'],
    ['a JWT-shaped string', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'],
    ['4096 characters of garbage', 'x'.repeat(4096)],
    ['a refresh token signed with another key', forgeRefreshToken(app, a.refresh_token, { signer: hmacSigner('sha256', otherSecret) })],
    ['a refresh token with alg none', forgeRefreshToken(app, a.refresh_token, { header: { alg: 'none' }, signer: noSigner })],
    ['an expired refresh token', forgeRefreshToken(app, a.refresh_token, { claims: { iat: now - 3600, exp: now - 600 } })],
    ['a refresh token of another issuer', forgeRefreshToken(app, a.refresh_token, { claims: { iss: 'someone-else' } })],
    ['an access token with alg none', forgeAccessToken(app, b.access_token, { header: { alg: 'none' }, signer: noSigner })],
    ['an access token with alg none and no signature segment', forgeAccessToken(app, b.access_token, { header: { alg: 'none' }, signer: noSigner }).slice(0, -1)],
    ['an access token signed with a fresh Ed25519 key', forgeAccessToken(app, b.access_token, { signer: freshKeySigner('EdDSA') })],
    ['an access token signed HS256 with the refresh secret', forgeAccessToken(app, b.access_token, { header: { alg: 'HS256' }, signer: hmacSigner('sha256', app.testKeys.refreshSecret) })],
    ['an expired access token', forgeAccessToken(app, b.access_token, { claims: { iat: now - 1200, exp: now - 600 } })],
    ['an access token of another audience', forgeAccessToken(app, b.access_token, { claims: { aud: 'another-api' } })],
    ['the access token with its signature cut', b.access_token.slice(0, b.access_token.lastIndexOf('.') + 1)],
    ['the refresh token with one character changed', a.refresh_token.slice(0, -2) + (a.refresh_token.at(-2) === 'A' ? 'B' : 'A') + a.refresh_token.slice(-1)],
    ['an already revoked refresh token', ended.refresh_token],
    ['the access token of an already revoked session', ended.access_token]
  ]
  for (const [name, token] of hostile) {
    for (const hint of [undefined, 'refresh_token', 'access_token']) {
      const body = hint ? { token, token_type_hint: hint } : { token }
      expectRevokeOk(t, await revokeJson(app, body), `${name} (JSON, hint ${hint ?? 'none'})`)
    }
    expectRevokeOk(t, await revokeForm(app, [['token', token]]), `${name} (form)`)
  }
  await expectLiveSessions(t, app, user.userId, [a, b, c], 'after every hostile token')
  for (const [name, token] of hostile.filter(([name]) => name.startsWith('an access token'))) {
    await expectAccessTokenNotMarked(t, store, user.userId, token, name)
  }
  await expectStrangerUntouched(t, app, stranger, 'after every hostile token')

  // The control: the same forgery with nothing changed is a valid token, and it does revoke.
  const control = forgeAccessToken(app, c.access_token)
  expectRevokeOk(t, await revokeJson(app, { token: control }), 'an unchanged forgery (a valid access token of C)')
  await expectSessionEnded(t, app, user.userId, c, a, 'C')
  await expectAccessTokenRevoked(t, store, user.userId, control, 'the control token')
  await expectLiveSessions(t, app, user.userId, [a, b], 'after the control')
})

t.test('a malformed request is 400 invalid_request, and revokes nothing', async t => {
  const { app } = await buildWithStore(t)
  const { user, a, b, c, stranger } = await population(app)

  const cases: Array<[string, () => Promise<Response>]> = [
    ['no token (JSON {})', () => revokeJson(app, {})],
    ['only a hint (JSON)', () => revokeJson(app, { token_type_hint: 'refresh_token' })],
    ['only a hint (form)', () => revokeForm(app, [['token_type_hint', 'refresh_token']])],
    ['an empty form body', () => app.inject({ method: 'POST', url: '/auth/revoke', headers: { 'content-type': FORM }, payload: '' })],
    ['no body at all', () => app.inject({ method: 'POST', url: '/auth/revoke' })],
    ['an empty JSON body', () => app.inject({ method: 'POST', url: '/auth/revoke', headers: { 'content-type': 'application/json' }, payload: '' })],
    ['an empty token (JSON)', () => revokeJson(app, { token: '' })],
    ['an empty token (form)', () => revokeForm(app, [['token', '']])],
    ['a token of 4097 characters', () => revokeJson(app, { token: a.refresh_token + 'x'.repeat(4097 - a.refresh_token.length) })],
    ['a number', () => revokeJson(app, { token: 12345678 })],
    ['null', () => revokeJson(app, { token: null })],
    ['an array holding a live refresh token', () => revokeJson(app, { token: [a.refresh_token] })],
    ['an object holding a live access token', () => revokeJson(app, { token: { token: b.access_token } })],
    ['true', () => revokeJson(app, { token: true })],
    ['a repeated form field (two live refresh tokens)', () => revokeForm(app, [['token', a.refresh_token], ['token', c.refresh_token]])],
    ['a hint that is a number', () => revokeJson(app, { token: a.refresh_token, token_type_hint: 1 })],
    ['a hint of 65 characters', () => revokeJson(app, { token: a.refresh_token, token_type_hint: 'r'.repeat(65) })],
    ['a JSON array body', () => revokeJson(app, [a.refresh_token])],
    ['a JSON string body', () => app.inject({ method: 'POST', url: '/auth/revoke', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(a.refresh_token) })],
    ['malformed JSON', () => app.inject({ method: 'POST', url: '/auth/revoke', headers: { 'content-type': 'application/json' }, payload: `{"token":"${a.refresh_token}"` })],
    ['text/plain', () => app.inject({ method: 'POST', url: '/auth/revoke', headers: { 'content-type': 'text/plain' }, payload: `token=${a.refresh_token}` })],
    ['a body over 16 KiB', () => revokeForm(app, [['token', a.refresh_token], ['padding', 'x'.repeat(17 * 1024)]])]
  ]
  for (const [name, send] of cases) {
    const res = await send()
    expectOAuthError(t, res, 'invalid_request', name)
    t.notMatch(res.body, /FST_|fastify|ajv|"stack"/i, `${name}: no library detail`)
  }
  // The missing-token case names the field.
  t.match((await revokeJson(app, {})).json().error_description, /token/, 'error_description names token')

  await expectLiveSessions(t, app, user.userId, [a, b, c], 'after every malformed request')
  await expectStrangerUntouched(t, app, stranger, 'after every malformed request')
})

t.test('rate limited per IP address (RATE_LIMIT_MAX)', async t => {
  const { app } = await buildWithStore(t, { RATE_LIMIT_MAX: 2 })
  // One register and one login from 127.0.0.1: each route has its own count.
  const user = await registerAndLogin(app)
  const { tokens: a } = user

  expectRevokeOk(t, await revokeJson(app, { token: 'not-a-token' }), 'first revoke')
  expectRevokeOk(t, await revokeForm(app, [['token', 'still-not-a-token']]), 'second revoke')
  const limited = await revokeJson(app, { token: a.refresh_token })
  t.equal(limited.statusCode, 429, 'third revoke: 429')
  t.match(limited.headers['retry-after'], /^[1-9][0-9]*$/, 'Retry-After in whole seconds')
  t.ok(Number(limited.headers['retry-after']) <= 60, 'Retry-After within the window')
  t.strictSame(limited.json(), RATE_LIMITED, 'the 429 body')
  await expectLiveSessions(t, app, user.userId, [a], 'the limited request revoked nothing')

  const limitedForm = await revokeForm(app, [['token', a.access_token]])
  t.equal(limitedForm.statusCode, 429, 'a form body is limited too')
  const limitedMalformed = await revokeJson(app, {})
  t.equal(limitedMalformed.statusCode, 429, 'the limit applies before the body is read')
  await expectLiveSessions(t, app, user.userId, [a], 'still nothing revoked')

  // Another address has its own count; other routes of the same address have theirs.
  const b = await login(app, user.email, user.password)
  expectRevokeOk(t, await revokeJson(app, { token: a.refresh_token }, '127.0.0.2'), 'another address')
  await expectSessionEnded(t, app, user.userId, a, b, 'A, revoked from another address')
  await expectLiveSessions(t, app, user.userId, [b], 'after A')

  // Malformed requests count: two 400s, then the third request is a 429 even with a valid body.
  expectOAuthError(t, await revokeJson(app, {}, '127.0.0.3'), 'invalid_request', 'a 400 from 127.0.0.3')
  expectOAuthError(t, await revokeJson(app, { token: 1 }, '127.0.0.3'), 'invalid_request', 'another 400 from 127.0.0.3')
  const third = await revokeJson(app, { token: b.refresh_token }, '127.0.0.3')
  t.equal(third.statusCode, 429, 'the third request from 127.0.0.3: 429')
  t.strictSame(third.json(), RATE_LIMITED)
  await expectLiveSessions(t, app, user.userId, [b], 'B survives the limited request')
})

t.test('a Redis outage is 503 with Retry-After, never 200; once Redis answers, the retry revokes', async t => {
  const server = await startRedisServer(t)
  const { app, store } = await buildWithStore(t, { REDIS_URL: server.url }, server.url)
  store.redis.on('error', () => {})
  const user = await registerAndLogin(app)
  const a = user.tokens
  const b = await login(app, user.email, user.password)
  const c = await login(app, user.email, user.password)

  server.pause()
  try {
    expectUnavailable(t, await revokeJson(app, { token: a.refresh_token }), 'hung: refresh token (JSON)')
    expectUnavailable(t, await revokeForm(app, [['token', b.access_token], ['token_type_hint', 'access_token']]), 'hung: access token (form)')
    expectUnavailable(t, await revokeJson(app, { token: 'not-a-token' }), 'hung: even an invalid token is not answered 200')
  } finally {
    server.resume()
  }

  // The client retries the same revocation; it works once Redis answers again.
  expectRevokeOk(t, await eventually('revoke A after SIGCONT', 200, () => revokeJson(app, { token: a.refresh_token })), 'the retried revocation of A')
  expectRevokeOk(t, await revokeForm(app, [['token', b.access_token], ['token_type_hint', 'access_token']]), 'the retried revocation of B')
  await expectSessionEnded(t, app, user.userId, a, c, 'A after the outage')
  await expectSessionEnded(t, app, user.userId, b, c, 'B after the outage')
  await expectAccessTokenRevoked(t, store, user.userId, b.access_token, 'B after the outage')
  await expectLiveSessions(t, app, user.userId, [c], 'after the outage')

  await server.kill()
  expectUnavailable(t, await revokeJson(app, { token: c.refresh_token }), 'killed: refresh token')
  expectUnavailable(t, await revokeJson(app, { token: c.access_token, token_type_hint: 'access_token' }), 'killed: access token')
  expectUnavailable(t, await revokeForm(app, [['token', 'not-a-token']]), 'killed: an invalid token')
})

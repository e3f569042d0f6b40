// The refresh-token lifecycle as a client sees it (issue #3 item 6), with the Redis allowlist
// `<prefix>:{<uid>}:rt` checked after every step against the refresh tokens that still work.
import { Writable } from 'node:stream'
import t from 'tap'
import { bearer, build, claimsOf, login, refresh, registerAndLogin } from '../helper.js'
import {
  allowlist, buildWithStore, expectAccessRevoked, expectAccessWorks, expectAllowlist, expectNoContent, expectOAuthError,
  expectRefreshRejected, expectRefreshWorks, expectTokenResponse, jtiOf, refreshJson, rtKey, sidOf, userKey
} from './support.js'

const CONCURRENCY = 20

t.test('register → login → /users/me → refresh → /users/me → logout: every token of the session stops working', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, tokens: first } = await registerAndLogin(app)
  await expectAllowlist(t, store, userId, [first.refresh_token], 'after login')

  const refreshClaims = claimsOf(first.refresh_token)
  const accessClaims = claimsOf(first.access_token)
  t.equal(refreshClaims.sub, userId, 'the refresh token names the user')
  t.equal(refreshClaims.sid, accessClaims.sid, 'both tokens name one session')
  await expectAccessWorks(t, app, first.access_token, userId, 'first access token')

  const res = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { grant_type: 'refresh_token', refresh_token: first.refresh_token } })
  const second = expectTokenResponse(t, res, 'refresh')
  t.equal(sidOf(second.refresh_token), sidOf(first.refresh_token), 'rotation keeps the session')
  t.equal(claimsOf(second.access_token).sid, sidOf(first.refresh_token), 'the new access token is of the same session')
  t.not(jtiOf(second.refresh_token), jtiOf(first.refresh_token), 'rotation issues a new refresh jti')
  t.not(second.access_token, first.access_token, 'and a new access token')
  await expectAllowlist(t, store, userId, [second.refresh_token], 'after refresh')
  await expectAccessWorks(t, app, second.access_token, userId, 'new access token')
  await expectAllowlist(t, store, userId, [second.refresh_token], 'after /users/me')

  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(second.access_token) })
  expectNoContent(t, logout, 'logout')
  await expectAllowlist(t, store, userId, [], 'after logout')
  t.equal(await store.redis.exists(rtKey(store, userId)), 0, 'the emptied set is gone')

  await expectAccessRevoked(t, app, second.access_token, 'the access token that logged out')
  await expectAccessRevoked(t, app, first.access_token, 'the earlier access token of the session')
  await expectRefreshRejected(t, app, first.refresh_token, 'the rotated-out refresh token')
  await expectRefreshRejected(t, app, second.refresh_token, 'the refresh token of the ended session')
  await expectAllowlist(t, store, userId, [], 'after the rejected refreshes')

  const again = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(second.access_token) })
  t.equal(again.statusCode, 401, 'logging out again with the revoked access token is 401')
})

t.test('refresh accepts JSON with or without grant_type, and a form body', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, tokens } = await registerAndLogin(app)

  const viaJson = expectTokenResponse(t, await refresh(app, tokens.refresh_token), 'JSON without grant_type')
  await expectAllowlist(t, store, userId, [viaJson.refresh_token], 'after the JSON refresh')

  const form = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: viaJson.refresh_token }).toString()
  })
  const viaForm = expectTokenResponse(t, form, 'form body')
  t.equal(sidOf(viaForm.refresh_token), sidOf(tokens.refresh_token), 'the same session')
  await expectAllowlist(t, store, userId, [viaForm.refresh_token], 'after the form refresh')
  await expectAccessWorks(t, app, viaForm.access_token, userId, 'access token from the form refresh')
})

t.test('malformed token requests are 400 invalid_request, other grants unsupported_grant_type, and none spends anything', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, tokens } = await registerAndLogin(app)
  const form = (fields: Record<string, string>) => app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(fields).toString()
  })
  const json = (payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/auth/refresh', payload })

  const cases: Array<[string, () => ReturnType<typeof json>]> = [
    ['JSON grant_type as a number', () => json({ grant_type: 1, refresh_token: tokens.refresh_token })],
    ['form with an empty grant_type', () => form({ grant_type: '', refresh_token: tokens.refresh_token })],
    ['JSON without refresh_token', () => json({ grant_type: 'refresh_token' })],
    ['form without refresh_token', () => form({ grant_type: 'refresh_token' })],
    ['JSON empty object', () => json({})],
    ['JSON refresh_token as a number', () => json({ grant_type: 'refresh_token', refresh_token: 12345 })],
    ['JSON refresh_token as an array', () => json({ refresh_token: [tokens.refresh_token] })],
    ['JSON empty refresh_token', () => json({ refresh_token: '' })],
    ['form with refresh_token twice', () => app.inject({
      method: 'POST',
      url: '/auth/refresh',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `refresh_token=${tokens.refresh_token}&refresh_token=${tokens.refresh_token}`
    })],
    ['no body', () => app.inject({ method: 'POST', url: '/auth/refresh' })],
    ['broken JSON', () => app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'content-type': 'application/json' }, payload: `{"refresh_token":"${tokens.refresh_token}"` })],
    ['text/plain', () => app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'content-type': 'text/plain' }, payload: tokens.refresh_token })]
  ]
  for (const [name, send] of cases) {
    expectOAuthError(t, await send(), 'invalid_request', name)
    await expectAllowlist(t, store, userId, [tokens.refresh_token], `after ${name}`)
  }

  // RFC 6749 §5.2: another grant is unsupported_grant_type, also when the rest is malformed too.
  const otherGrants: Array<[string, () => ReturnType<typeof json>]> = [
    ['JSON grant_type password', () => json({ grant_type: 'password', refresh_token: tokens.refresh_token })],
    ['JSON grant_type authorization_code', () => json({ grant_type: 'authorization_code', refresh_token: tokens.refresh_token })],
    ['form grant_type client_credentials', () => form({ grant_type: 'client_credentials', refresh_token: tokens.refresh_token })],
    ['JSON grant_type password, with a username and no refresh_token', () => json({ grant_type: 'password', username: 'a@example.com', password: 'x' })]
  ]
  for (const [name, send] of otherGrants) {
    expectOAuthError(t, await send(), 'unsupported_grant_type', name)
    await expectAllowlist(t, store, userId, [tokens.refresh_token], `after ${name}`)
  }

  // None of them spent the token.
  const next = await expectRefreshWorks(t, app, tokens.refresh_token, 'the token after the rejected requests')
  await expectAllowlist(t, store, userId, [next.refresh_token], 'after the refresh')
})

t.test('tokens never stand in for each other', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, tokens } = await registerAndLogin(app)

  await expectRefreshRejected(t, app, tokens.access_token, 'an access token at /auth/refresh')
  expectOAuthError(t, await refreshJson(app, 'not.a.jwt'), 'invalid_grant', 'garbage at /auth/refresh')
  await expectAllowlist(t, store, userId, [tokens.refresh_token], 'after the rejected grants')

  const asBearer = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.refresh_token) })
  t.equal(asBearer.statusCode, 401, 'a refresh token as bearer is 401')
  t.equal(asBearer.headers['www-authenticate'], 'Bearer realm="tollgate", error="invalid_token"')
  t.same(asBearer.json(), { statusCode: 401, code: 'INVALID_TOKEN', error: 'Unauthorized', message: 'The access token is invalid, expired or revoked' })
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.refresh_token) })
  t.equal(logout.statusCode, 401, 'a refresh token cannot log out')
  await expectAllowlist(t, store, userId, [tokens.refresh_token], 'after the rejected bearers')

  // Both still work for what they are.
  await expectAccessWorks(t, app, tokens.access_token, userId, 'the access token')
  const next = await expectRefreshWorks(t, app, tokens.refresh_token, 'the refresh token')
  await expectAllowlist(t, store, userId, [next.refresh_token], 'after the refresh')
})

t.test('interval 0: replaying a rotated-out refresh token revokes its whole session', async t => {
  const { app, store } = await buildWithStore(t, { REFRESH_REUSE_INTERVAL: 0 })
  const { userId, email, password, tokens: first } = await registerAndLogin(app)
  const other = await login(app, email, password)
  await expectAllowlist(t, store, userId, [first.refresh_token, other.refresh_token], 'two sessions')

  const second = await expectRefreshWorks(t, app, first.refresh_token, 'rotation')
  await expectAllowlist(t, store, userId, [second.refresh_token, other.refresh_token], 'after rotation')

  await expectRefreshRejected(t, app, first.refresh_token, 'the replay')
  await expectAllowlist(t, store, userId, [other.refresh_token], 'after the replay')

  await expectRefreshRejected(t, app, second.refresh_token, 'the successor after the replay')
  await expectAccessRevoked(t, app, first.access_token, 'the first access token of the session')
  await expectAccessRevoked(t, app, second.access_token, 'the successor access token of the session')
  await expectAllowlist(t, store, userId, [other.refresh_token], 'after the revoked session was tried')

  // The user's other session is not part of the family.
  await expectAccessWorks(t, app, other.access_token, userId, 'the other session')
  const otherNext = await expectRefreshWorks(t, app, other.refresh_token, 'the other session refresh')
  await expectAllowlist(t, store, userId, [otherNext.refresh_token], 'after the other session rotated')
})

t.test('a replay is logged for operators (who, which session, never the token); other refusals are not', async t => {
  const lines: string[] = []
  const logStream = new Writable({ write (chunk, _enc, done) { lines.push(chunk.toString()); done() } })
  const app = await build(t, { config: { REFRESH_REUSE_INTERVAL: 0, LOG_LEVEL: 'warn' }, logStream })
  const { userId, tokens: first } = await registerAndLogin(app)
  await expectRefreshRejected(t, app, 'not-a-token', 'garbage')
  await expectRefreshWorks(t, app, first.refresh_token, 'rotation')
  t.same(lines.filter(line => line.includes('reuse')), [], 'no reuse logged before the replay')
  await expectRefreshRejected(t, app, first.refresh_token, 'the replay')
  const reuse = lines.map(line => JSON.parse(line) as Record<string, unknown>).filter(line => line.msg === 'refresh token reuse: session revoked')
  t.equal(reuse.length, 1, 'one line')
  t.match(reuse[0], { level: 40, userId, sid: sidOf(first.refresh_token) }, 'a warning naming the user and the session')
  t.notOk(lines.join('').includes(first.refresh_token.split('.')[2] as string), 'no token in the log')
})

t.test('interval 10: a replay within the interval gets the same successor; an older one revokes the session', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, tokens: first } = await registerAndLogin(app)

  const second = await expectRefreshWorks(t, app, first.refresh_token, 'rotation')
  await expectAllowlist(t, store, userId, [second.refresh_token], 'after rotation')

  const replay = await expectRefreshWorks(t, app, first.refresh_token, 'replay within the interval')
  t.equal(jtiOf(replay.refresh_token), jtiOf(second.refresh_token), 'the replay gets the same successor jti')
  await expectAllowlist(t, store, userId, [second.refresh_token], 'after the replay: still one live jti')
  await expectAccessWorks(t, app, replay.access_token, userId, 'access token of the replay')

  const third = await expectRefreshWorks(t, app, replay.refresh_token, 'rotating the successor')
  await expectAllowlist(t, store, userId, [third.refresh_token], 'after the second rotation')

  // first is two rotations back: neither live nor the just-rotated one.
  await expectRefreshRejected(t, app, first.refresh_token, 'a token two rotations back')
  await expectAllowlist(t, store, userId, [], 'after reuse: the session is gone')
  await expectRefreshRejected(t, app, third.refresh_token, 'the live token after reuse')
  await expectAccessRevoked(t, app, third.access_token, 'the latest access token after reuse')
  await expectAccessRevoked(t, app, first.access_token, 'the first access token after reuse')
})

t.test(`interval 10: ${CONCURRENCY} concurrent refreshes of one token all get the same successor`, async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: first } = await registerAndLogin(app)
  const other = await login(app, email, password)
  const sid = sidOf(first.refresh_token)

  const results = await Promise.all(Array.from({ length: CONCURRENCY }, () => refreshJson(app, first.refresh_token)))
  const pairs = results.map((res, i) => expectTokenResponse(t, res, `concurrent refresh ${i}`))
  const successors = new Set(pairs.map(p => jtiOf(p.refresh_token)))
  t.equal(successors.size, 1, 'every response carries the same successor jti')
  const [successor] = successors
  t.not(successor, jtiOf(first.refresh_token), 'the successor is a new jti')
  t.ok(pairs.every(p => sidOf(p.refresh_token) === sid), 'all of the same session')
  t.equal(new Set(pairs.map(p => p.access_token)).size, CONCURRENCY, 'each response has its own access token')

  await expectAllowlist(t, store, userId, [pairs[0]!.refresh_token, other.refresh_token], 'after the concurrent refreshes')
  const live = await allowlist(store, userId)
  t.same(live.filter(j => j !== jtiOf(other.refresh_token)), [successor], 'exactly one jti of that session')
  t.equal(await store.redis.hget(userKey(store, userId, `s:${sid}`), 'jti'), successor, 'the session names it as current')
  for (const [i, pair] of pairs.entries()) await expectAccessWorks(t, app, pair.access_token, userId, `access token ${i}`)

  // The one live token works once more...
  const next = await expectRefreshWorks(t, app, pairs[CONCURRENCY - 1]!.refresh_token, 'refreshing the successor')
  t.equal(sidOf(next.refresh_token), sid)
  await expectAllowlist(t, store, userId, [next.refresh_token, other.refresh_token], 'after refreshing the successor')
  // ...and the older one is a reuse, which ends the session.
  await expectRefreshRejected(t, app, first.refresh_token, 'the original token, two rotations back')
  await expectAllowlist(t, store, userId, [other.refresh_token], 'after the reuse')
  await expectRefreshRejected(t, app, next.refresh_token, 'the latest token of the revoked session')
  await expectAccessWorks(t, app, other.access_token, userId, 'the other session')
})

t.test(`interval 0: of ${CONCURRENCY} concurrent refreshes of one token exactly one succeeds`, async t => {
  const { app, store } = await buildWithStore(t, { REFRESH_REUSE_INTERVAL: 0 })
  const { userId, email, password, tokens: first } = await registerAndLogin(app)
  const other = await login(app, email, password)

  const results = await Promise.all(Array.from({ length: CONCURRENCY }, () => refreshJson(app, first.refresh_token)))
  const winners = results.filter(res => res.statusCode === 200)
  t.equal(winners.length, 1, 'exactly one 200')
  for (const [i, res] of results.entries()) {
    if (res.statusCode === 200) expectTokenResponse(t, res, `winner ${i}`)
    else expectOAuthError(t, res, 'invalid_grant', `loser ${i}`)
  }
  // Strict mode: the losers presented a spent token, which is reuse, so the family is revoked.
  await expectAllowlist(t, store, userId, [other.refresh_token], 'after the race')
  const winner = winners[0]!.json()
  await expectRefreshRejected(t, app, winner.refresh_token, 'the winner after the reuse')
  await expectAccessRevoked(t, app, winner.access_token, 'the winner access token after the reuse')
  await expectAccessRevoked(t, app, first.access_token, 'the first access token after the reuse')
  await expectAccessWorks(t, app, other.access_token, userId, 'the other session')
  await expectAllowlist(t, store, userId, [other.refresh_token], 'at the end')
})

// GET /auth/sessions and DELETE /auth/sessions/:id, with the Redis allowlist after each step.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { bearer, login, registerAndLogin } from '../helper.js'
import {
  buildWithStore, expectAccessRevoked, expectAccessWorks, expectAllowlist, expectNoContent, expectRefreshRejected,
  expectRefreshWorks, sidOf
} from '../flows/support.js'

const SESSION_KEYS = ['created_at', 'current', 'expires_at', 'id', 'ip', 'last_used_at', 'user_agent']
const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
const NOT_FOUND = { statusCode: 404, code: 'SESSION_NOT_FOUND', error: 'Not Found', message: 'Session not found' }

t.test('GET /auth/sessions lists the live sessions; current marks the caller', async t => {
  const { app, store } = await buildWithStore(t)
  const before = Date.now()
  const { userId, email, password, tokens: phone } = await registerAndLogin(app, { userAgent: 'TollgatePhone/1.0' })
  const laptop = await login(app, email, password, 'TollgateLaptop/2.0 (X11)')
  const after = Date.now()
  const stranger = await registerAndLogin(app, { userAgent: 'Stranger/9' })
  await expectAllowlist(t, store, userId, [phone.refresh_token, laptop.refresh_token], 'two sessions')

  const res = await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(phone.access_token) })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const sessions = res.json() as Array<Record<string, unknown>>
  t.equal(sessions.length, 2, "the user's two sessions, not the other user's")
  for (const s of sessions) {
    t.same(Object.keys(s).sort(), SESSION_KEYS, 'session fields')
    for (const field of ['created_at', 'last_used_at', 'expires_at']) {
      t.equal(new Date(s[field] as string).toISOString(), s[field], `${field} is an ISO date-time`)
    }
    const created = Date.parse(s.created_at as string)
    t.ok(created >= before - 1 && created <= after + 1, 'created during the test')
    t.equal(s.last_used_at, s.created_at, 'not used since login')
    t.equal(Date.parse(s.expires_at as string) - created, THIRTY_DAYS_MS, 'absolute lifetime of 30 days')
    t.equal(s.ip, '127.0.0.1')
  }
  const byId = new Map(sessions.map(s => [s.id, s]))
  t.same(byId.get(sidOf(phone.refresh_token)), { ...byId.get(sidOf(phone.refresh_token)), current: true, user_agent: 'TollgatePhone/1.0' })
  t.same(byId.get(sidOf(laptop.refresh_token)), { ...byId.get(sidOf(laptop.refresh_token)), current: false, user_agent: 'TollgateLaptop/2.0 (X11)' })
  t.equal(sessions.filter(s => s.current).length, 1, 'exactly one current session')

  const fromLaptop = (await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(laptop.access_token) })).json() as Array<Record<string, unknown>>
  t.same(fromLaptop.filter(s => s.current).map(s => s.id), [sidOf(laptop.refresh_token)], 'current follows the caller')

  const strangers = (await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(stranger.tokens.access_token) })).json() as Array<Record<string, unknown>>
  t.same(strangers.map(s => [s.id, s.user_agent, s.current]), [[sidOf(stranger.tokens.refresh_token), 'Stranger/9', true]])

  // A refresh moves last_used_at and keeps the absolute expiry.
  const laptop2 = await expectRefreshWorks(t, app, laptop.refresh_token, 'laptop refresh')
  await expectAllowlist(t, store, userId, [phone.refresh_token, laptop2.refresh_token], 'after the laptop rotated')
  const later = (await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(phone.access_token) })).json() as Array<Record<string, unknown>>
  const laptopBefore = byId.get(sidOf(laptop.refresh_token))!
  const laptopAfter = later.find(s => s.id === sidOf(laptop.refresh_token))!
  t.ok(Date.parse(laptopAfter.last_used_at as string) >= Date.parse(laptopBefore.last_used_at as string), 'last_used_at does not go back')
  t.equal(laptopAfter.created_at, laptopBefore.created_at, 'created_at is kept')
  t.equal(laptopAfter.expires_at, laptopBefore.expires_at, 'rotation never extends the session')

  const anonymous = await app.inject({ method: 'GET', url: '/auth/sessions' })
  t.equal(anonymous.statusCode, 401, 'without a token: 401')
})

t.test('GET /auth/sessions lists the newest session first', async t => {
  const { app } = await buildWithStore(t)
  const { email, password, tokens: older } = await registerAndLogin(app, { userAgent: 'Older/1' })
  // Apart by a few ms, so the two created_at differ.
  await sleep(5)
  const newer = await login(app, email, password, 'Newer/2')

  const res = await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(older.access_token) })
  t.equal(res.statusCode, 200)
  const sessions = res.json() as Array<Record<string, unknown>>
  t.same(sessions.map(s => [s.id, s.user_agent]), [[sidOf(newer.refresh_token), 'Newer/2'], [sidOf(older.refresh_token), 'Older/1']], 'the newer login first')
  const created = sessions.map(s => Date.parse(s.created_at as string))
  t.ok(created.every((c, i) => i === 0 || c <= created[i - 1]!), 'created_at does not increase down the list')
})

t.test('GET /auth/sessions: a refresh moves last_used_at past created_at', async t => {
  const { app } = await buildWithStore(t)
  const { tokens } = await registerAndLogin(app, { userAgent: 'Refresher/1' })
  // Apart by a few ms, so a last_used_at that is really the login time shows.
  await sleep(5)
  const next = await expectRefreshWorks(t, app, tokens.refresh_token, 'refresh')

  const res = await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(next.access_token) })
  t.equal(res.statusCode, 200)
  const [session, ...rest] = res.json() as Array<Record<string, unknown>>
  t.same(rest, [], 'one session')
  t.equal(session!.id, sidOf(tokens.refresh_token), 'the refreshed session')
  t.ok(Date.parse(session!.last_used_at as string) > Date.parse(session!.created_at as string), 'last_used_at is the refresh, later than the login')
})

t.test('DELETE /auth/sessions/:id ends that session; other ids are 404, non-uuids 400', async t => {
  const { app, store } = await buildWithStore(t)
  const { userId, email, password, tokens: phone } = await registerAndLogin(app, { userAgent: 'Phone' })
  const laptop = await login(app, email, password, 'Laptop')
  const stranger = await registerAndLogin(app)
  const laptopSid = sidOf(laptop.refresh_token)
  await expectAllowlist(t, store, userId, [phone.refresh_token, laptop.refresh_token], 'two sessions')

  const del = (id: string, token = phone.access_token) => app.inject({ method: 'DELETE', url: `/auth/sessions/${id}`, headers: bearer(token) })

  expectNoContent(t, await del(laptopSid), 'delete the laptop session')
  await expectAllowlist(t, store, userId, [phone.refresh_token], 'after deleting the laptop session')
  await expectAccessRevoked(t, app, laptop.access_token, 'laptop access')
  await expectRefreshRejected(t, app, laptop.refresh_token, 'laptop refresh')
  await expectAccessWorks(t, app, phone.access_token, userId, 'phone access')
  const listed = (await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(phone.access_token) })).json() as Array<{ id: string }>
  t.same(listed.map(s => s.id), [sidOf(phone.refresh_token)], 'only the phone session is listed')

  const again = await del(laptopSid)
  t.equal(again.statusCode, 404, 'an ended session: 404')
  t.same(again.json(), NOT_FOUND)

  const strangerSid = sidOf(stranger.tokens.refresh_token)
  const foreign = await del(strangerSid)
  t.equal(foreign.statusCode, 404, "another user's session: 404")
  t.same(foreign.json(), NOT_FOUND)
  await expectAllowlist(t, store, stranger.userId, [stranger.tokens.refresh_token], "the other user's allowlist is untouched")
  await expectAccessWorks(t, app, stranger.tokens.access_token, stranger.userId, "the other user's session still works")
  const strangerNext = await expectRefreshWorks(t, app, stranger.tokens.refresh_token, "the other user's refresh")
  await expectAllowlist(t, store, stranger.userId, [strangerNext.refresh_token], "the other user's allowlist after rotation")

  const unknown = await del(randomUUID())
  t.equal(unknown.statusCode, 404, 'a random uuid: 404')
  t.same(unknown.json(), NOT_FOUND)

  for (const bad of ['not-a-uuid', '12345', `${laptopSid}x`]) {
    const res = await del(bad)
    t.equal(res.statusCode, 400, `${bad}: 400`)
    t.equal(res.json().code, 'INVALID_REQUEST')
    t.equal(res.json().statusCode, 400)
    t.equal(res.json().error, 'Bad Request')
    t.match(res.json().message, /params\/id/, 'the message names the parameter')
  }

  const anonymous = await app.inject({ method: 'DELETE', url: `/auth/sessions/${sidOf(phone.refresh_token)}` })
  t.equal(anonymous.statusCode, 401, 'without a token: 401')
  await expectAllowlist(t, store, userId, [phone.refresh_token], 'after the rejected deletes')

  // A session can end itself.
  expectNoContent(t, await del(sidOf(phone.refresh_token)), 'delete the current session')
  await expectAllowlist(t, store, userId, [], 'after deleting the current session')
  await expectAccessRevoked(t, app, phone.access_token, 'phone access')
  await expectRefreshRejected(t, app, phone.refresh_token, 'phone refresh')
})

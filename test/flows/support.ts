// Assertions shared by the refresh-lifecycle tests: what a client sees of a token, and what Redis holds.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Test } from 'tap'
import type { ConfigInput } from '../../src/config.js'
import type { OAuthErrorCode } from '../../src/errors.js'
import { bearer, build, claimsOf, redisClient, type TestApp, type TokenPair } from '../helper.js'

export const INVALID_GRANT = { error: 'invalid_grant', error_description: 'The refresh token is invalid, expired or revoked' }
export const REVOKED_ACCESS = { statusCode: 401, code: 'INVALID_TOKEN', error: 'Unauthorized', message: 'The access token is invalid, expired or revoked' }
export const INVALID_TOKEN_CHALLENGE = 'Bearer realm="tollgate", error="invalid_token"'
export const TOKEN_RESPONSE_KEYS = ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type']

export const jtiOf = (token: string) => claimsOf(token).jti as string
export const sidOf = (token: string) => claimsOf(token).sid as string

/** The app and a Redis client to read its keys; the test picks the key prefix so it knows it. */
export interface Store {
  redis: Redis
  prefix: string
}

/** build() with a key prefix of our own (the app's decorations are not visible from outside it). */
export async function buildWithStore (t: Test, config: ConfigInput = {}, redisUrl?: string): Promise<{ app: TestApp, store: Store }> {
  const prefix = `t-${randomBytes(6).toString('hex')}`
  const app = await build(t, { config: { REDIS_KEY_PREFIX: prefix, ...config } })
  return { app, store: { redis: await redisClient(t, redisUrl), prefix } }
}

export const userKey = (store: Store, userId: string, suffix: string) => `${store.prefix}:{${userId}}:${suffix}`
export const rtKey = (store: Store, userId: string) => userKey(store, userId, 'rt')

/** The allowlist of one user, sorted. */
export async function allowlist (store: Store, userId: string): Promise<string[]> {
  return (await store.redis.smembers(rtKey(store, userId))).sort()
}

/** Asserts the set `<prefix>:{<uid>}:rt` holds exactly the jtis of these refresh tokens. */
export async function expectAllowlist (t: Test, store: Store, userId: string, liveRefreshTokens: string[], step: string) {
  const expected = [...new Set(liveRefreshTokens.map(jtiOf))].sort()
  t.same(await allowlist(store, userId), expected, `${step}: the rt set holds exactly the live refresh jtis`)
}

export function refreshJson (app: FastifyInstance, refreshToken: string) {
  return app.inject({ method: 'POST', url: '/auth/refresh', payload: { grant_type: 'refresh_token', refresh_token: refreshToken } })
}

type Response = Awaited<ReturnType<FastifyInstance['inject']>>

/** Seconds: the access token lifetime, and the refresh token lifetime (the idle timeout, cut at the session's end). */
export interface Lifetimes {
  access: number
  /** Exact, or [min, max] when the session's end is near. */
  refresh: number | [number, number]
}
export const DEFAULT_LIFETIMES: Lifetimes = { access: 600, refresh: 604_800 }

/** A 200 RFC 6749 §5.1 token response, sent with no-store and no-cache. */
export function expectTokenResponse (t: Test, res: Response, step: string, lifetimes = DEFAULT_LIFETIMES): TokenPair {
  t.equal(res.statusCode, 200, `${step}: 200`)
  t.equal(res.headers['cache-control'], 'no-store', `${step}: cache-control: no-store`)
  t.equal(res.headers.pragma, 'no-cache', `${step}: pragma: no-cache`)
  t.match(res.headers['content-type'], /^application\/json/, `${step}: JSON`)
  const body = res.json()
  t.same(Object.keys(body).sort(), TOKEN_RESPONSE_KEYS, `${step}: token response fields`)
  t.equal(body.token_type, 'Bearer', `${step}: token_type`)
  t.equal(body.expires_in, lifetimes.access, `${step}: expires_in is the access lifetime`)
  // Whole seconds up to the session's end: one less when a second boundary falls in between.
  const [min, max] = typeof lifetimes.refresh === 'number' ? [lifetimes.refresh - 1, lifetimes.refresh] : lifetimes.refresh
  t.ok(Number.isInteger(body.refresh_expires_in) && body.refresh_expires_in >= min && body.refresh_expires_in <= max,
    `${step}: refresh_expires_in ${body.refresh_expires_in} in [${min}, ${max}]`)
  t.type(body.access_token, 'string')
  t.type(body.refresh_token, 'string')
  return body
}

/** A 400 RFC 6749 §5.2 error body, sent with no-store. */
export function expectOAuthError (t: Test, res: Response, error: OAuthErrorCode, step: string) {
  t.equal(res.statusCode, 400, `${step}: 400`)
  t.equal(res.headers['cache-control'], 'no-store', `${step}: cache-control: no-store`)
  t.equal(res.headers.pragma, 'no-cache', `${step}: pragma: no-cache`)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['error', 'error_description'], `${step}: only error and error_description`)
  t.equal(body.error, error, `${step}: error is ${error}`)
  if (error === 'invalid_grant') t.same(body, INVALID_GRANT, `${step}: invalid_grant body`)
  else t.match(body.error_description, /\S/, `${step}: error_description says what is wrong`)
}

/** Refreshes and asserts success; returns the new pair. */
export async function expectRefreshWorks (t: Test, app: FastifyInstance, refreshToken: string, step: string, lifetimes = DEFAULT_LIFETIMES): Promise<TokenPair> {
  return expectTokenResponse(t, await refreshJson(app, refreshToken), step, lifetimes)
}

export async function expectRefreshRejected (t: Test, app: FastifyInstance, refreshToken: string, step: string) {
  expectOAuthError(t, await refreshJson(app, refreshToken), 'invalid_grant', step)
}

export async function expectAccessWorks (t: Test, app: FastifyInstance, accessToken: string, userId: string, step: string) {
  const res = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(accessToken) })
  t.equal(res.statusCode, 200, `${step}: GET /users/me is 200`)
  t.equal(res.json().id, userId, `${step}: the user of the token`)
}

export async function expectAccessRevoked (t: Test, app: FastifyInstance, accessToken: string, step: string) {
  const res = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(accessToken) })
  expectRevokedResponse(t, res, step)
}

export function expectRevokedResponse (t: Test, res: Response, step: string) {
  t.equal(res.statusCode, 401, `${step}: 401`)
  t.equal(res.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE, `${step}: WWW-Authenticate`)
  t.same(res.json(), REVOKED_ACCESS, `${step}: 401 body`)
}

export function expectNoContent (t: Test, res: Response, step: string) {
  t.equal(res.statusCode, 204, `${step}: 204`)
  t.equal(res.body, '', `${step}: empty body`)
}

import { randomUUID } from 'node:crypto'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'

// Cookie mode (REFRESH_COOKIE) as a browser sees it: a cookie jar that stores what Set-Cookie
// says and sends back, like a browser, only the cookies whose Path matches the request's path.

export const REFRESH_COOKIE = 'tollgate_refresh'
export const CSRF_COOKIE = 'tollgate_csrf'

/** A cookie as Set-Cookie sets it (light-my-request's parse of the header). */
export interface SetCookie {
  name: string
  value: string
  path?: string
  maxAge?: number
  expires?: Date
  httpOnly?: boolean
  secure?: boolean
  sameSite?: string
  domain?: string
}

/** The cookies a response sets, by name and Path. */
export function setCookies (res: LightMyRequestResponse): SetCookie[] {
  return res.cookies as SetCookie[]
}

/** RFC 6265 §5.1.4 path-match. */
export function pathMatches (cookiePath: string, requestPath: string): boolean {
  if (cookiePath === requestPath) return true
  if (!requestPath.startsWith(cookiePath)) return false
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'
}

/** A browser's cookie jar for one origin (expiry by Max-Age=0 only: tests never wait). */
export class CookieJar {
  private readonly cookies = new Map<string, SetCookie>()

  /** Applies a response's Set-Cookie headers: stores, replaces, or deletes (Max-Age=0). */
  store (res: LightMyRequestResponse): this {
    for (const cookie of setCookies(res)) {
      const key = `${cookie.name};${cookie.path ?? '/'}`
      if (cookie.maxAge !== undefined && cookie.maxAge <= 0) this.cookies.delete(key)
      else this.cookies.set(key, cookie)
    }
    return this
  }

  /** The Cookie header a browser sends to `url`: matching cookies, longer paths first; undefined when none. */
  header (url: string): string | undefined {
    const path = new URL(url, 'https://tollgate.test').pathname
    const sent = [...this.cookies.values()]
      .filter(cookie => pathMatches(cookie.path ?? '/', path))
      .sort((a, b) => (b.path ?? '/').length - (a.path ?? '/').length)
    return sent.length > 0 ? sent.map(cookie => `${cookie.name}=${cookie.value}`).join('; ') : undefined
  }

  /** The stored cookie `name` at `path`, or undefined. */
  get (name: string, path = '/'): SetCookie | undefined {
    return this.cookies.get(`${name};${path}`)
  }

  /** Every stored cookie named `name`. */
  all (name: string): SetCookie[] {
    return [...this.cookies.values()].filter(cookie => cookie.name === name)
  }

  /** The CSRF token a page's script reads from the readable cookie. */
  get csrfToken (): string | undefined {
    return this.get(CSRF_COOKIE)?.value
  }

  get size (): number {
    return this.cookies.size
  }

  copy (): CookieJar {
    const jar = new CookieJar()
    for (const [key, cookie] of this.cookies) jar.cookies.set(key, { ...cookie })
    return jar
  }
}

/** A browser: requests carry the jar's cookies for their path, and every response updates the jar. */
export function browser (app: FastifyInstance, jar = new CookieJar()) {
  return {
    jar,
    async request (options: InjectOptions & { url: string }): Promise<LightMyRequestResponse> {
      const cookie = jar.header(options.url)
      const headers = { ...options.headers, ...(cookie && { cookie }) }
      const res = await app.inject({ ...options, headers })
      jar.store(res)
      return res
    }
  }
}

export type Browser = ReturnType<typeof browser>

/** POST <prefix>/auth/login with JSON. */
export function logIn (b: Browser, email: string, password: string, prefix = '') {
  return b.request({ method: 'POST', url: `${prefix}/auth/login`, payload: { email, password } })
}

/** POST <prefix>/auth/refresh with no body, and the X-CSRF-Token header unless `csrf` is null. */
export function refreshByCookie (b: Browser, csrf: string | null | undefined = b.jar.csrfToken, prefix = '') {
  return b.request({ method: 'POST', url: `${prefix}/auth/refresh`, headers: csrf === null || csrf === undefined ? {} : { 'x-csrf-token': csrf } })
}

/** Registers a user; returns the credentials. */
export async function registerUser (app: FastifyInstance, prefix = ''): Promise<{ email: string, password: string, id: string }> {
  const email = `cookie-${randomUUID()}@example.com`
  const password = 'correct horse battery staple'
  const res = await app.inject({ method: 'POST', url: `${prefix}/auth/register`, payload: { email, password } })
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  return { email, password, id: res.json().id }
}

/** The refresh-token cookie is set once for each route that reads it, with that route's Path, and only those. */
export const cookiePaths = (prefix = '') => ['refresh', 'logout', 'revoke'].map(route => `${prefix}/auth/${route}`)

/** The 403 of a failed CSRF check, as the contract states it. */
export function expectCsrfRefused (t: Test, res: LightMyRequestResponse, step: string) {
  t.equal(res.statusCode, 403, `${step}: 403`)
  t.has(res.json(), { statusCode: 403, code: 'CSRF_CHECK_FAILED', error: 'Forbidden' }, `${step}: CSRF_CHECK_FAILED`)
  t.strictSame(setCookies(res), [], `${step}: no cookie is set or cleared`)
}

/** Every cookie of cookie mode is expired by `res`: the refresh cookie at each of its paths and the CSRF cookie. */
export function expectCookiesCleared (t: Test, res: LightMyRequestResponse, step: string, prefix = '') {
  const cleared = setCookies(res).filter(cookie => cookie.maxAge === 0 && cookie.value === '')
  t.strictSame(
    cleared.map(cookie => `${cookie.name} ${cookie.path}`).sort(),
    [...cookiePaths(prefix).map(path => `${REFRESH_COOKIE} ${path}`), `${CSRF_COOKIE} /`].sort(),
    `${step}: every cookie is expired (Max-Age=0)`
  )
  t.equal(setCookies(res).length, cleared.length, `${step}: and none is set`)
}

import { DependencyError } from '../errors.js'

export interface IntrospectionCheckOptions {
  /** The Tollgate server's `POST …/auth/introspect` URL. */
  url: string
  clientId: string
  clientSecret: string
  /** How long a live answer is trusted, ms: a logout is seen within this. */
  cacheTtlMs: number
  /** Answers remembered at most. */
  cacheSize?: number
}

const TIMEOUT_MS = 2000
const DEFAULT_CACHE_SIZE = 10_000

/**
 * The revocation check by RFC 7662 introspection, for resource servers that cannot reach the
 * Tollgate server's Redis: one call per token, then a short cache. An inactive answer is kept
 * until the token expires (a revoked token never comes back). Any failure of the call (refused,
 * timed out, not 200, not JSON) is a DependencyError: 503, never a pass.
 */
export function createIntrospectionCheck ({ url, clientId, clientSecret, cacheTtlMs, cacheSize = DEFAULT_CACHE_SIZE }: IntrospectionCheckOptions) {
  // RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and base64-encoded.
  const authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`
  const cache = new Map<string, { active: boolean, until: number }>()

  async function introspect (token: string): Promise<boolean> {
    let response: Response
    let body: { active?: unknown } | null
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        signal: AbortSignal.timeout(TIMEOUT_MS),
        redirect: 'error'
      })
      body = await response.json() as { active?: unknown } | null
    } catch (err) {
      throw new DependencyError('introspection', err)
    }
    if (response.status !== 200 || typeof body?.active !== 'boolean') {
      throw new DependencyError('introspection', new Error(`introspection answered ${response.status}`))
    }
    return body.active
  }

  // One call per token at a time: concurrent requests with it wait for the call under way, so a
  // burst with one token cannot spend the client's introspection budget at the server.
  const inFlight = new Map<string, Promise<boolean>>()

  async function introspectAndRemember (access: { jti: string, exp: number, now: number }, token: string): Promise<boolean> {
    try {
      const active = await introspect(token)
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string)
      cache.set(access.jti, { active, until: active ? Math.min(access.now + cacheTtlMs, access.exp * 1000) : access.exp * 1000 })
      return active
    } finally {
      inFlight.delete(access.jti)
    }
  }

  return async function isAccessAllowed (access: { jti: string, exp: number, now: number }, token: string): Promise<boolean> {
    const hit = cache.get(access.jti)
    if (hit && hit.until > access.now) return hit.active
    let call = inFlight.get(access.jti)
    if (!call) {
      call = introspectAndRemember(access, token)
      inFlight.set(access.jti, call)
    }
    return await call
  }
}

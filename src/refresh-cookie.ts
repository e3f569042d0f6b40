import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'

/*
 * Cookie mode (REFRESH_COOKIE): what a browser holds. The refresh token travels in an HttpOnly
 * cookie; a readable CSRF cookie carries a token that the app's scripts echo in the X-CSRF-Token
 * header (double submit). The CSRF token is OWASP's "signed double-submit cookie": a random value
 * and an HMAC over it and the session id, so a cookie planted by a sibling subdomain (which can
 * write cookies but not read ours) or taken from another session does not pass.
 */

/** The HttpOnly cookie that holds the refresh token. */
export const REFRESH_COOKIE_NAME = 'tollgate_refresh'
/** The readable cookie that holds the CSRF token. */
export const CSRF_COOKIE_NAME = 'tollgate_csrf'
/** The request header that echoes the CSRF cookie (and the response header that hands it over). */
export const CSRF_HEADER = 'X-CSRF-Token'

export interface CsrfTokens {
  /** A new token for the session `sid`: `<random>.<hmac>`, base64url. */
  issue (sid: string): string
  /** Whether `token` was issued for the session `sid` (compared in constant time). */
  isValid (token: string, sid: string): boolean
}

const NONCE_BYTES = 16

/**
 * CSRF tokens keyed by a key derived (HKDF) from the refresh-token secret: every instance that
 * shares the secret accepts the same tokens, and the MAC key differs from the JWT signing key.
 */
export function createCsrfTokens (refreshSecret: string): CsrfTokens {
  const key = Buffer.from(hkdfSync('sha256', refreshSecret, Buffer.alloc(0), 'tollgate csrf token v1', 32))
  const mac = (sid: string, nonce: string) => createHmac('sha256', key).update(`${sid}.${nonce}`).digest()

  return {
    issue (sid) {
      const nonce = randomBytes(NONCE_BYTES).toString('base64url')
      return `${nonce}.${mac(sid, nonce).toString('base64url')}`
    },
    isValid (token, sid) {
      const [nonce, signature, extra] = token.split('.')
      if (!nonce || !signature || extra !== undefined) return false
      const expected = mac(sid, nonce)
      const given = Buffer.from(signature, 'base64url')
      return given.length === expected.length && timingSafeEqual(given, expected)
    }
  }
}

/** Whether two strings are equal, in time that does not depend on where they differ. */
export function sameToken (a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

/**
 * The CORS origins (CORS_ORIGINS) served over plain HTTP, loopback excepted. In cookie mode CORS
 * lets them send credentials, so a page of theirs, which anyone on the network path can rewrite,
 * could call refresh with the browser's cookies and read the access token it answers. Loopback
 * (localhost, 127.0.0.0/8, [::1]) never crosses a network: fine for development.
 */
export function plainHttpOrigins (origins: string[]): string[] {
  return origins.filter(origin => origin.startsWith('http://') && !isLoopback(origin))
}

function isLoopback (origin: string): boolean {
  let hostname: string
  try {
    hostname = new URL(origin).hostname
  } catch {
    return false
  }
  return hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname)
}

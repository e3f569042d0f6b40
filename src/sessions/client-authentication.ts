import { createHash, timingSafeEqual } from 'node:crypto'

const BASIC = /^Basic +([A-Za-z0-9+/]+=*) *$/i

const digest = (value: string) => createHash('sha256').update(value).digest()

/**
 * HTTP Basic client authentication (RFC 6749 §2.3.1, RFC 7617) against a fixed set of clients.
 * Secrets are compared as SHA-256 digests with timingSafeEqual, so neither their length nor their
 * content shows in the answer time; an unknown id costs the same comparison as a known one.
 * Returns the client id, or null.
 */
export function createClientAuthenticator (clients: Map<string, string>) {
  const digests = new Map([...clients].map(([id, secret]) => [id, digest(secret)]))
  const nobody = digest('tollgate: no such client')

  return function authenticateClient (authorization: string | undefined): string | null {
    const match = authorization ? BASIC.exec(authorization) : null
    if (!match) return null
    const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) return null
    let id: string
    let secret: string
    try {
      // RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined.
      id = decodeURIComponent(decoded.slice(0, colon).replaceAll('+', ' '))
      secret = decodeURIComponent(decoded.slice(colon + 1).replaceAll('+', ' '))
    } catch {
      return null
    }
    const expected = digests.get(id)
    const matches = timingSafeEqual(digest(secret), expected ?? nobody)
    return expected && matches ? id : null
  }
}

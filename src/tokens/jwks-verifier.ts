import { createPublicKey } from 'node:crypto'
import { InvalidTokenError } from '../errors.js'
import { createAccessTokenVerifier, parseHeader, type AccessClaims, type VerificationKey } from './access-token.js'

/** A JSON Web Key Set (RFC 7517), as GET /.well-known/jwks.json serves it. */
export interface Jwks { keys: unknown[] }

export interface JwksVerifierOptions {
  /** Where the keys come from: a URL, fetched again for an unknown kid, or a fixed set. */
  source: { url: string } | { jwks: Jwks }
  issuer: string
  audience: string
  /** The longest lifetime the issuer gives an access token, seconds. */
  maxLifetime: number
  /** Least time between two fetches for unknown kids, ms. */
  cooldownMs: number
  /** With a URL: how old the keys may get before they are fetched again, ms. */
  maxAgeMs: number
  /** A fetch after the first one failed; the keys known so far stay in use. */
  onRefreshError: (err: unknown) => void
}

const FETCH_TIMEOUT_MS = 5000

/**
 * Access-token verification from a Tollgate server's JWKS, for resource servers. The keys are
 * fetched once before this resolves (a failure is a boot error); a token naming a kid not in the set
 * makes one fetch more, then at most one per cooldown, so a key the server starts signing with is
 * picked up without a restart. Keys older than the max age are fetched again before the next token
 * is verified, so a withdrawn (say, leaked) key stops verifying within it even when no unknown kid
 * comes along. Synchronous except during a fetch.
 */
export async function createJwksVerifier (options: JwksVerifierOptions): Promise<(token: string) => AccessClaims | Promise<AccessClaims>> {
  const { source, issuer, audience, maxLifetime, cooldownMs, maxAgeMs } = options
  const build = (keys: Array<Extract<VerificationKey, { alg: 'EdDSA' }>>) => {
    const fingerprint = JSON.stringify(keys.map(key => [key.kid, key.publicKey]).sort())
    const verify = keys.length > 0 ? createAccessTokenVerifier({ issuer, audience, keys, maxLifetime }) : refuseEveryToken
    return { fingerprint, kids: new Set(keys.map(key => key.kid)), verify }
  }

  const url = 'url' in source ? source.url : undefined
  // At start, a set with no key or with a key that cannot verify is a configuration error.
  const first = ('url' in source ? await fetchJwks(source.url) : source.jwks).keys.map(verificationKey)
  if (first.length === 0) throw new Error('tollgate/verify: the JWKS has no keys (a server that signs with HS256 publishes none; resource servers need EdDSA)')
  let current = build(first)
  // The first unknown kid after start may fetch at once: the server may have rotated just now.
  let lastUnknownKidFetch = -Infinity
  // When the last fetch ended (with the keys, or failing): the age of the keys in use.
  let fetchedAt = Date.now()
  let refreshing: Promise<void> | undefined

  // One fetch at a time; every request that needs it waits for the one under way.
  function refreshed (from: string): Promise<void> {
    refreshing ??= refresh(from).finally(() => { refreshing = undefined })
    return refreshing
  }

  async function refresh (from: string): Promise<void> {
    try {
      // The server's answer is the truth about its keys: a key it no longer lists stops verifying,
      // even when the rest of the answer is unusable (a key this cannot use is left out; none left,
      // as when the server switched to HS256, refuses every token).
      const usable: Array<Extract<VerificationKey, { alg: 'EdDSA' }>> = []
      for (const jwk of (await fetchJwks(from)).keys) {
        try {
          usable.push(verificationKey(jwk))
        } catch (err) {
          options.onRefreshError(err)
        }
      }
      if (usable.length === 0) options.onRefreshError(new Error(`tollgate/verify: the JWKS at ${from} has no key this can use: every token is refused until it has one`))
      const next = build(usable)
      // Same keys: keep the verifier, and with it its cache of verified tokens.
      if (next.fingerprint !== current.fingerprint) current = next
    } catch (err) {
      options.onRefreshError(err)
    } finally {
      fetchedAt = Date.now()
    }
  }

  function verifyWithCurrent (token: string): AccessClaims | Promise<AccessClaims> {
    try {
      return current.verify(token)
    } catch (err) {
      if (url === undefined) throw err
      const kid = parseHeader(token)?.kid
      if (typeof kid !== 'string' || current.kids.has(kid)) throw err
      if (!refreshing) {
        if (Date.now() - lastUnknownKidFetch < cooldownMs) throw err
        lastUnknownKidFetch = Date.now()
      }
      return refreshed(url).then(() => current.verify(token))
    }
  }

  return function verifyAccessToken (token: string): AccessClaims | Promise<AccessClaims> {
    // Keys past their age wait for a fetch, so a withdrawn key is never used after it; a failed
    // fetch keeps them (reported) until the next one, a max age later.
    if (url !== undefined && Date.now() - fetchedAt >= maxAgeMs) return refreshed(url).then(() => verifyWithCurrent(token))
    return verifyWithCurrent(token)
  }
}

/** For a JWKS that lists no key this can use: nothing verifies. */
function refuseEveryToken (): never {
  throw new InvalidTokenError()
}

async function fetchJwks (url: string): Promise<Jwks> {
  let response: Response
  try {
    // No redirects: the keys come from the URL configured, nowhere else. `no-cache`: a proxy cache
    // on the way must ask the server, or a withdrawn key could outlive jwksMaxAge there.
    response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/json', 'cache-control': 'no-cache' }, redirect: 'error' })
  } catch (err) {
    throw new Error(`tollgate/verify: could not fetch the JWKS at ${url}: ${(err as Error).message}`)
  }
  if (!response.ok) throw new Error(`tollgate/verify: the JWKS at ${url} answered ${response.status}`)
  const body = await response.json().catch(() => null) as Jwks | null
  if (!body || !Array.isArray(body.keys)) throw new Error(`tollgate/verify: ${url} did not return a JWKS ({"keys": [...]})`)
  return body
}

/** An Ed25519 JWK as Tollgate publishes it; anything else is a configuration error. */
function verificationKey (jwk: unknown): Extract<VerificationKey, { alg: 'EdDSA' }> {
  const { kty, crv, x, kid, alg, use } = (jwk ?? {}) as Record<string, unknown>
  if (kty !== 'OKP' || crv !== 'Ed25519' || typeof x !== 'string' || typeof kid !== 'string' ||
    (alg !== undefined && alg !== 'EdDSA') || (use !== undefined && use !== 'sig')) {
    throw new Error(`tollgate/verify: unsupported JWK ${JSON.stringify({ kty, crv, kid, alg, use })}: Tollgate signs with Ed25519 keys (kty OKP, crv Ed25519, alg EdDSA) that have a kid`)
  }
  const publicKey = createPublicKey({ key: { kty, crv, x }, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString()
  return { alg: 'EdDSA', kid, publicKey }
}

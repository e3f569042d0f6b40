/*
 * The checks fast-jwt leaves to the caller, shared by the access-token verifier and the refresh-token
 * verification of the token service. Each reads the token text; none verifies a signature.
 */

export const LEEWAY_SECONDS = 30

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// The signature segment in canonical base64url (RFC 7515 §2): its alphabet only, no padding.
const SIGNATURE_SEGMENT = /^[A-Za-z0-9_-]+$/
// The 6-bit value of each base64url character, to check the unused bits of the last one.
const BASE64URL_VALUE = new Int8Array(128)
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) BASE64URL_VALUE[c.charCodeAt(0)] = i
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COLON = 0x3a

/**
 * RFC 8725 §3.10, RFC 9068 §4: ids are UUID strings before anything looks them up, iat is not in the
 * future, and the lifetime is not longer than the issuer issues.
 */
export function hasSaneClaims (payload: { sub: unknown, jti: unknown, sid: unknown, iat: unknown, exp: unknown }, maxLifetime: number): boolean {
  const { sub, jti, sid, iat, exp } = payload
  if (typeof sub !== 'string' || !UUID.test(sub)) return false
  if (typeof jti !== 'string' || !UUID.test(jti)) return false
  if (typeof sid !== 'string' || !UUID.test(sid)) return false
  if (typeof iat !== 'number' || typeof exp !== 'number' || !Number.isFinite(iat) || !Number.isFinite(exp)) return false
  if (iat > Date.now() / 1000 + LEEWAY_SECONDS) return false
  return exp - iat <= maxLifetime
}

/**
 * One spelling per signature (RFC 7515 §2, RFC 4648 §3.5): the base64url alphabet only, no padding,
 * and the unused low bits of the last character zero. Node's base64 decoding, which fast-jwt uses,
 * ignores those bits, so without this check one Ed25519-signed token has 16 spellings that all
 * verify (an HS256 one 4), each a new entry in a verified-token cache. Header and payload need no
 * such check: their exact characters are what the signature covers.
 */
export function hasCanonicalSignature (token: string): boolean {
  const signature = token.slice(token.lastIndexOf('.') + 1)
  if (!SIGNATURE_SEGMENT.test(signature)) return false
  const last = BASE64URL_VALUE[signature.charCodeAt(signature.length - 1)] as number
  switch (signature.length % 4) {
    case 0: return true
    case 2: return (last & 0x0f) === 0
    case 3: return (last & 0x03) === 0
    default: return false // a character left over encodes no whole byte
  }
}

/**
 * The header (already parsed) holds `members` members, those fast-jwt and the caller check, no other
 * and none twice (RFC 8725 §3.11, RFC 7515 §4.1: jwk, jku, x5u, x5c, cty, crit… are refused).
 */
export function hasOnlyHeaderMembers (token: string, header: unknown, members: number): boolean {
  return memberCount(header) === members &&
    colonsOutsideStrings(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url')) === members
}

/**
 * RFC 7515 §5.2 and RFC 8725 §3.1: a claims set with duplicate member names is rejected, while
 * JSON.parse keeps the last of each. A member was dropped exactly when the text holds more members
 * than the parsed value, and every member of JSON text is one `:` outside a string: counting those
 * (over the decoded bytes, since UTF-8 never puts a byte below 0x80 inside a multi-byte character)
 * against the parsed members finds a duplicate at any depth without parsing again.
 */
export function hasNoDuplicateClaims (token: string, payload: unknown): boolean {
  const start = token.indexOf('.') + 1
  const json = Buffer.from(token.slice(start, token.lastIndexOf('.')), 'base64url')
  return colonsOutsideStrings(json) === memberCount(payload)
}

/** Own enumerable members of a parsed JSON value, counted through nested objects and arrays. */
function memberCount (value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0
  let count = 0
  if (Array.isArray(value)) {
    for (const item of value) count += memberCount(item)
    return count
  }
  for (const key in value) count += 1 + memberCount((value as Record<string, unknown>)[key])
  return count
}

function colonsOutsideStrings (json: Buffer): number {
  let colons = 0
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const byte = json[i]
    if (inString) {
      if (byte === BACKSLASH) i++
      else if (byte === QUOTE) inString = false
    } else if (byte === QUOTE) {
      inString = true
    } else if (byte === COLON) {
      colons++
    }
  }
  return colons
}

import { createHash, randomBytes } from 'node:crypto'

/** What a mailed link's token is for. */
export type LinkPurpose = 'verify_email' | 'reset_password'

/** How long a mailed link works, ms: a day to verify an address, half an hour to reset a password (OWASP). */
export const LINK_LIFETIME_MS: Record<LinkPurpose, number> = {
  verify_email: 24 * 60 * 60 * 1000,
  reset_password: 30 * 60 * 1000
}

/** 256 random bits, base64url (43 characters): far beyond guessing, and safe in a URL as it is. */
export function newLinkToken (): string {
  return randomBytes(32).toString('base64url')
}

/**
 * What the database keeps of a token: its SHA-256, hex. No salt or slow hash is needed for 256
 * random bits (unlike a password); whoever reads the table still cannot make a working link.
 */
export function hashLinkToken (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/**
 * The token-store port: where refresh-token state lives (the allowlist of live refresh jtis per
 * user, session metadata, access-token revocation). Implemented on Redis (./redis.js, production)
 * and in process (./memory.js, the embedded default); both pass the contract suite in
 * ./contract.js, which another implementation can run too. Times are unix milliseconds.
 *
 * A session keeps the user's roles from its start, so a refresh needs no database read: a role
 * change reaches a session's access tokens when it ends (end the user's sessions to apply it at
 * once). A deleted user's refresh fails because deleting an account ends its sessions and closes
 * it to new ones (`endSessions` with `closeAccount`).
 */
export interface TokenStore {
  /** What backs it, as /health/ready reports it: `redis`, `memory`, or another store's own name. */
  readonly kind: string
  /**
   * Starts a session whose first refresh token is `jti`. False, and nothing stored, when the user's
   * account was closed (a login that read the user before its deletion finished after it). A user
   * keeps MAX_SESSIONS_PER_USER live sessions at most: beyond that, the ones used least recently end.
   */
  createSession (session: NewSession): Promise<boolean>
  /** Atomically swaps the presented jti for `nextJti` and returns the session's roles, or says why not. */
  rotate (request: RotateRequest): Promise<RotateResult>
  /** The revocation check of every authenticated request. */
  isAccessAllowed (access: { userId: string, sid: string, jti: string, iat: number, now: number }): Promise<boolean>
  /** Ends one session; also revokes the access token that asked, until it expires. False if there was none. */
  endSession (end: { userId: string, sid: string, accessJti?: string, accessExpiresAt?: number, now: number }): Promise<boolean>
  /**
   * Ends every session of the user but `except`; without `except`, also rejects all earlier access
   * tokens. With `closeAccount` (the user has been deleted), every later `createSession` for the
   * user is refused, for the absolute session lifetime.
   */
  endSessions (end: { userId: string, except?: string, now: number, closeAccount?: boolean }): Promise<void>
  listSessions (userId: string, now: number): Promise<SessionRecord[]>
  /** The user's live refresh jtis (the allowlist), for inspection and tests. */
  liveRefreshJtis (userId: string): Promise<string[]>
  ping (): Promise<void>
  /** Releases what the store opened (never a client it was handed). */
  close (): Promise<void>
}

/** The lifetimes every store is built with, in ms. */
/**
 * Live sessions one user may have; a new one beyond it ends the least recently used. It bounds what
 * one account costs the store, and the per-user work that lists, prunes or ends its sessions.
 */
export const MAX_SESSIONS_PER_USER = 100

export interface TokenStoreOptions {
  /** Idle timeout of a session. */
  idleTtl: number
  /** How long the previous refresh token still gets the same successor; 0 = strict. */
  reuseInterval: number
  /** Absolute session lifetime: how long a user's state (such as the not-before mark) is kept. */
  absoluteTtl: number
}

export interface NewSession {
  userId: string
  sid: string
  jti: string
  now: number
  /** Absolute end of the session; rotation never extends it. */
  expiresAt: number
  userAgent: string | null
  ip: string | null
  /** The user's roles, kept with the session and returned by every rotation. */
  roles: string[]
}

export interface RotateRequest {
  userId: string
  sid: string
  jti: string
  nextJti: string
  now: number
  userAgent: string | null
  ip: string | null
  /**
   * The user's roles, read from the database after a `no-roles` outcome: stored with this rotation
   * into a session that has none.
   */
  roles?: string[]
}

export type RotateResult =
  /**
   * `jti` is the session's live refresh jti: new on `rotated`, the same successor again on `grace`;
   * `roles` are the session's.
   */
  | { outcome: 'rotated' | 'grace', jti: string, expiresAt: number, roles: string[] }
  /** `reuse`: a rotated-out token came back and the session is now revoked. */
  | { outcome: 'reuse' | 'unknown' | 'expired' }
  /**
   * The session was stored without roles (by a version before they were kept) and the request
   * brought none: nothing changed. Rotate again with the user's `roles`.
   */
  | { outcome: 'no-roles' }

export interface SessionRecord {
  id: string
  createdAt: number
  lastUsedAt: number
  expiresAt: number
  userAgent: string | null
  ip: string | null
}

import { randomUUID } from 'node:crypto'
import type { Config } from '../config.js'
import type { User } from '../entities/user.js'
import { EmailNotVerifiedError, InvalidCredentialsError, InvalidTokenError, SessionNotFoundError, WrongPasswordError, invalidGrant } from '../errors.js'
import { logSafeError } from '../log-safe-error.js'
import type { PasswordHasher } from '../password.js'
import type { TokenResponse } from '../schemas.js'
import type { SessionRecord, TokenStore } from '../token-store/index.js'
import type { AccessClaims } from '../tokens/access-token.js'
import type { TokenService } from '../tokens/token-service.js'
import type { UserRepository } from '../user-repository.js'

/** Who is asking, as the sessions list shows it. */
export interface Client {
  userAgent: string | null
  ip: string | null
}

/** The caller of a protected operation: the claims of its verified, unrevoked access token. */
export interface Caller {
  id: string
  sid: string
  jti: string
  /** Access token expiry, unix seconds. */
  exp: number
}

export interface SessionServiceDeps {
  config: Pick<Config, 'REFRESH_TOKEN_TTL' | 'REQUIRE_VERIFIED_EMAIL'>
  users: UserRepository
  passwords: PasswordHasher
  tokens: TokenService
  tokenStore: TokenStore
  /** Where a detected refresh-token reuse is reported (a pino logger fits). */
  log: { warn (details: object, message: string): void, error (details: object, message: string): void }
  /** Ends the user's live password-reset links (src/recovery): a password change must not be undone by one. */
  supersedeResetLinks: (userId: string) => Promise<void>
}

/**
 * The grants and the session lifecycle: register, log in, refresh (rotation with reuse detection),
 * log out, end sessions, change the password, delete the account. Knows nothing of HTTP: failures
 * are the errors of ../errors.js, which routes turn into statuses.
 */
export function createSessionService ({ config, users, passwords, tokens, tokenStore, log, supersedeResetLinks }: SessionServiceDeps) {
  /**
   * Starts a session, which keeps the user's roles for its refreshes, and returns its first token
   * pair. A user deleted since it was read gets the generic credentials error, and so does one whose
   * password changed meanwhile: a reset or password change that committed while this password was
   * being checked may have ended the user's sessions just before this one was created.
   */
  async function startSession (user: Pick<User, 'id' | 'roles' | 'passwordHash'>, client: Client): Promise<TokenResponse> {
    const now = Date.now()
    const sid = randomUUID()
    const jti = randomUUID()
    const expiresAt = now + config.REFRESH_TOKEN_TTL * 1000
    const created = await tokenStore.createSession({ userId: user.id, sid, jti, now, expiresAt, ...client, roles: user.roles })
    if (created === false) throw new InvalidCredentialsError()
    // After the session exists: a change that commits later ends it with the user's other sessions.
    if (await users.passwordHashOf(user.id) !== user.passwordHash) {
      await tokenStore.endSession({ userId: user.id, sid, now: Date.now() })
      throw new InvalidCredentialsError()
    }
    return tokens.tokenResponse({ userId: user.id, sid, roles: user.roles, refreshJti: jti, sessionExpiresAt: expiresAt })
  }

  /** The caller's user; a token whose user is gone is an invalid token. */
  async function currentUser (caller: Caller): Promise<User> {
    const user = await users.findById(caller.id)
    if (!user) throw new InvalidTokenError()
    return user
  }

  async function checkPassword (user: User, password: string): Promise<void> {
    if (!await passwords.verify(user.passwordHash, password)) throw new WrongPasswordError()
  }

  return {
    currentUser,

    async register (input: { email: string, password: string, name: string | null }): Promise<User> {
      return users.create({ email: input.email, name: input.name, passwordHash: await passwords.hash(input.password) })
    },

    /** The password grant. One generic error for an unknown email and a wrong password. */
    async login (input: { email: string, password: string }, client: Client): Promise<TokenResponse> {
      const user = await users.findByEmail(input.email)
      // An unknown email costs one verify too, so the answer time does not reveal which emails exist.
      const valid = user ? await passwords.verify(user.passwordHash, input.password) : await passwords.verifyAgainstNothing(input.password)
      if (!user || !valid) throw new InvalidCredentialsError()
      // Only now: whoever lacks the password learns nothing about the account, not even this.
      if (config.REQUIRE_VERIFIED_EMAIL && !user.emailVerified) throw new EmailNotVerifiedError()
      return startSession(user, client)
    },

    /**
     * The refresh grant: the presented token is spent and its successor returned (or the session
     * revoked on reuse). One token-store call: the session holds the roles, and a deleted user has
     * no sessions (deleteAccount). Only a session stored before roles were kept needs the database,
     * once, before anything is spent.
     */
    async refresh (refreshToken: string, client: Client): Promise<TokenResponse> {
      const claims = tokens.verifyRefreshToken(refreshToken)
      const request = { userId: claims.sub, sid: claims.sid, jti: claims.jti, nextJti: randomUUID(), now: Date.now(), ...client }
      let result = await tokenStore.rotate(request)
      if (result.outcome === 'no-roles') {
        const user = await users.findById(claims.sub)
        if (!user) {
          await tokenStore.endSession({ userId: claims.sub, sid: claims.sid, now: Date.now() })
          throw invalidGrant()
        }
        result = await tokenStore.rotate({ ...request, now: Date.now(), roles: user.roles })
      }
      if (result.outcome === 'reuse') log.warn({ userId: claims.sub, sid: claims.sid }, 'refresh token reuse: session revoked')
      if (result.outcome !== 'rotated' && result.outcome !== 'grace') throw invalidGrant()
      return tokens.tokenResponse({ userId: claims.sub, sid: claims.sid, roles: result.roles, refreshJti: result.jti, sessionExpiresAt: result.expiresAt })
    },

    /**
     * Ends the caller's session and revokes its access token. A refresh token of another of the
     * caller's sessions ends that one too; an invalid one is ignored (RFC 7009 §2.2).
     */
    async logout (caller: Caller, refreshToken?: string): Promise<void> {
      const now = Date.now()
      if (refreshToken) {
        const other = verifiedOrUndefined(() => tokens.verifyRefreshToken(refreshToken))
        if (other && other.sub === caller.id && other.sid !== caller.sid) await tokenStore.endSession({ userId: caller.id, sid: other.sid, now })
      }
      await tokenStore.endSession({ userId: caller.id, sid: caller.sid, accessJti: caller.jti, accessExpiresAt: caller.exp * 1000, now })
    },

    /** Every session of the caller ends, and every access token issued before now stops working. */
    async logoutAll (caller: Caller): Promise<void> {
      await tokenStore.endSessions({ userId: caller.id, now: Date.now() })
    },

    /** The caller's live sessions, newest first. */
    async listSessions (caller: Caller): Promise<SessionRecord[]> {
      const sessions = await tokenStore.listSessions(caller.id, Date.now())
      return sessions.sort((a, b) => b.createdAt - a.createdAt)
    },

    async endSession (caller: Caller, sid: string): Promise<void> {
      if (!await tokenStore.endSession({ userId: caller.id, sid, now: Date.now() })) throw new SessionNotFoundError()
    },

    /** Every other session ends; the caller's stays. */
    async changePassword (caller: Caller, input: { currentPassword: string, newPassword: string }): Promise<void> {
      const user = await users.findById(caller.id)
      if (!user) throw new InvalidCredentialsError()
      await checkPassword(user, input.currentPassword)
      // Before the new password is stored: if this fails (503), nothing has changed yet. A reset link
      // mailed earlier (maybe to an attacker who had the mailbox) would otherwise undo the change.
      await supersedeResetLinks(user.id)
      // The other sessions end inside the transaction: if Redis fails (503), the password stays as it
      // was, so the same request can simply be sent again. A reset that committed since the check
      // wins: its owner's new password stands, and this change is refused.
      const replaced = await users.replacePasswordHash(user.id, user.passwordHash, await passwords.hash(input.newPassword),
        () => tokenStore.endSessions({ userId: user.id, except: caller.sid, now: Date.now() }))
      if (!replaced) throw new WrongPasswordError()
    },

    /**
     * RFC 7009 revocation. A refresh token ends its session; an access token ends its session too
     * and is itself revoked until it expires (as logout does with it). The hint only decides which
     * kind is tried first. An invalid, expired or already revoked token changes nothing.
     */
    async revoke (token: string, hint?: string): Promise<void> {
      const now = Date.now()
      const asRefresh = async () => {
        const claims = verifiedOrUndefined(() => tokens.verifyRefreshToken(token))
        if (claims) await tokenStore.endSession({ userId: claims.sub, sid: claims.sid, now })
        return claims !== undefined
      }
      const asAccess = async () => {
        const claims = verifiedOrUndefined(() => tokens.verifyAccessToken(token))
        if (claims) await tokenStore.endSession({ userId: claims.sub, sid: claims.sid, accessJti: claims.jti, accessExpiresAt: claims.exp * 1000, now })
        return claims !== undefined
      }
      const [first, second] = hint === 'access_token' ? [asAccess, asRefresh] : [asRefresh, asAccess]
      if (!await first()) await second()
    },

    /**
     * RFC 7662 introspection: the claims of a live access token (verified, and not revoked: the
     * same check as every authenticated request), or null for anything else, refresh tokens included.
     */
    async introspect (token: string): Promise<AccessClaims | null> {
      const claims = verifiedOrUndefined(() => tokens.verifyAccessToken(token))
      if (!claims) return null
      const live = await tokenStore.isAccessAllowed({ userId: claims.sub, sid: claims.sid, jti: claims.jti, iat: claims.iat, now: Date.now() })
      return live ? claims : null
    },

    async deleteAccount (caller: Caller, password: string): Promise<void> {
      const user = await currentUser(caller)
      await checkPassword(user, password)
      // Every session ends inside the deletion's transaction: if Redis fails (503), nothing is
      // deleted. A reset that committed since the check wins: the account its owner recovered stays.
      const removed = await users.remove(user.id, user.passwordHash, () => tokenStore.endSessions({ userId: user.id, now: Date.now() }))
      if (!removed) throw new WrongPasswordError()
      // Refreshes do not read the database, so no session may outlive the user: a login that read
      // it before the removal may have started one since. End those, and refuse any later one.
      // Should that fail, the account is gone all the same and its client is told so (a 503 would
      // have it retry a deletion that is done); such a login still ends its own session when its
      // re-read of the user finds none.
      await tokenStore.endSessions({ userId: user.id, now: Date.now(), closeAccount: true }).catch((err: unknown) => {
        log.error({ err: logSafeError(err), userId: user.id }, 'account deleted, but the token store could not be told to refuse new sessions of it')
      })
    }
  }
}

export type SessionService = ReturnType<typeof createSessionService>

function verifiedOrUndefined<T> (run: () => T): T | undefined {
  try {
    return run()
  } catch {
    return undefined
  }
}

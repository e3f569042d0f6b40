import type { Config } from '../config.js'
import type { User } from '../entities/user.js'
import { InvalidTokenError, RateLimitedError } from '../errors.js'
import type { Mailer } from '../mail/mailer.js'
import { linkTo, passwordChangedMail, passwordResetMail, verificationMail } from '../mail/messages.js'
import type { PasswordHasher } from '../password.js'
import type { TokenStore } from '../token-store/index.js'
import type { UserRepository } from '../user-repository.js'
import { createBackgroundWork } from './background-work.js'
import type { LinkTokenRepository } from './link-token-repository.js'

export interface AccountRecoveryDeps {
  config: Pick<Config, 'APP_URL'>
  users: UserRepository
  linkTokens: LinkTokenRepository
  passwords: PasswordHasher
  tokenStore: TokenStore
  mailer: Mailer
  /** Milliseconds since the epoch, for the links' tokens (issue and expiry). */
  clock: () => number
  /** Counts a verification mail to the address: undefined within its budget, else seconds to wait. */
  verificationMailTo: (email: string) => Promise<number | undefined>
  log: { warn (details: object, message: string): void, error (details: object, message: string): void }
}

/**
 * Email verification and password reset by mailed links (OWASP Forgot Password Cheat Sheet).
 * Knows nothing of HTTP. Mail never holds up or changes an answer: it is queued, and what must not
 * reveal whether an address has an account (the reset request) happens after the answer.
 */
export function createAccountRecovery ({ config, users, linkTokens, passwords, tokenStore, mailer, clock, verificationMailTo, log }: AccountRecoveryDeps) {
  const background = createBackgroundWork(log)

  async function mailVerificationLink (user: Pick<User, 'id' | 'email'>): Promise<void> {
    const token = await linkTokens.issue({ userId: user.id, email: user.email, purpose: 'verify_email', now: clock() })
    mailer.send(verificationMail(user.email, linkTo(config.APP_URL, 'verify-email', token)), { kind: 'verify_email', userId: user.id })
  }

  return {
    /**
     * A new account's first verification link, issued after registration has answered; none when
     * the address has had its budget of verification mails (a stranger registering it again and
     * again). Its owner can ask for one later.
     */
    welcome (user: Pick<User, 'id' | 'email'>): void {
      background.run('verification link after registration', async () => {
        if (await verificationMailTo(user.email) !== undefined) {
          log.warn({ mail: { kind: 'verify_email', userId: user.id } }, 'mail not sent: the address has had its verification mails for the hour')
          return
        }
        await mailVerificationLink(user)
      })
    },

    /**
     * A fresh verification link for the caller (earlier ones stop working). An address that is
     * verified already gets none; one that has had its budget of verification mails, a 429.
     */
    async resendVerification (caller: { id: string }): Promise<void> {
      const user = await users.findById(caller.id)
      if (!user) throw new InvalidTokenError()
      if (user.emailVerified) return
      const retryAfter = await verificationMailTo(user.email)
      if (retryAfter !== undefined) throw new RateLimitedError(retryAfter)
      await mailVerificationLink(user)
    },

    /** Spends a verification link's token: the address it went to is verified. */
    async verifyEmail (token: string): Promise<void> {
      await linkTokens.verifyEmail(token, clock())
    },

    /**
     * Returns at once, the same for every address: the lookup, the token and the mail happen after
     * the answer, so neither its content nor its timing tells whether the address has an account.
     * Only an address with an account gets a mail; a newer request supersedes the older links.
     */
    requestPasswordReset (email: string): void {
      background.run('password reset request', async () => {
        const user = await users.findByEmail(email)
        if (!user) return
        const token = await linkTokens.issue({ userId: user.id, email: user.email, purpose: 'reset_password', now: clock() })
        mailer.send(passwordResetMail(user.email, linkTo(config.APP_URL, 'reset-password', token)), { kind: 'reset_password', userId: user.id })
      })
    },

    /**
     * Spends a reset link's token: the new password is set, the address counts as verified, and
     * every session of the user ends, access tokens included (as logout-all). The owner is told by
     * mail. A token that cannot be used fails before any argon2 work.
     */
    async resetPassword (token: string, newPassword: string): Promise<void> {
      await linkTokens.inspect(token, 'reset_password', clock())
      const passwordHash = await passwords.hash(newPassword)
      // Sessions end inside the transaction: if Redis is down (503), the password stays as it was
      // and the link keeps working, so the user can simply try again.
      const holder = await linkTokens.resetPassword(token, clock(), passwordHash,
        ({ userId }) => tokenStore.endSessions({ userId, now: Date.now() }))
      mailer.send(passwordChangedMail(holder.email), { kind: 'password_changed', userId: holder.userId })
    },

    /** Resolves when the work after answers is done and the mail queue is empty (retries included). */
    async settled (): Promise<void> {
      await background.idle()
      await mailer.settled()
    },

    /** For shutdown, before the database closes: waits for the work after answers, then closes the mailer. */
    async close (): Promise<void> {
      await background.idle()
      await mailer.close()
    }
  }
}

export type AccountRecovery = ReturnType<typeof createAccountRecovery>

import { randomUUID } from 'node:crypto'
import type { MikroORM } from '@mikro-orm/core'
import { DependencyError, ExpiredLinkTokenError, SupersededLinkTokenError, TollgateError, UnknownLinkTokenError, UsedLinkTokenError } from '../errors.js'
import { logSafeError } from '../log-safe-error.js'
import { isConnectionFailure } from '../user-repository.js'
import { LINK_LIFETIME_MS, hashLinkToken, newLinkToken, type LinkPurpose } from './link-token.js'

/** The account a usable token was issued for. */
export interface LinkHolder {
  userId: string
  /** The address the link was mailed to. */
  email: string
}

type Row = Record<string, unknown>

// A spent, superseded or expired token is kept this long after its expiry, so that its link still
// says why it fails; then the next link issued to the same user deletes it.
const KEEP_AFTER_EXPIRY_MS = 7 * 24 * 60 * 60 * 1000

const at = (ms: number) => new Date(ms).toISOString()

// Tries of a transaction that PostgreSQL aborts as a deadlock (40P01) or serialization failure (40001).
const TRANSACTION_ATTEMPTS = 3

/** A deadlock or serialization failure: the transaction was rolled back and can simply run again. */
function isTransactionConflict (err: unknown): boolean {
  for (let e = err as { code?: unknown, cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === '40P01' || e.code === '40001') return true
  }
  return false
}

/**
 * The tokens of mailed links (email verification, password reset) in PostgreSQL: only their SHA-256
 * is stored, each works once, until it expires or a newer one of the same purpose replaces it. The
 * tokens' times come from the caller (the injectable clock), never from the database's own `now()`.
 */
export function createLinkTokenRepository (orm: () => MikroORM, log: { warn (details: object, message: string): void }) {
  async function guard<T> (run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      // Ours (a link error, Redis's 503 from inside a transaction) pass as they are.
      if (err instanceof TollgateError || err instanceof DependencyError) throw err
      if (isConnectionFailure(err)) throw new DependencyError('postgres', err)
      throw err
    }
  }

  /**
   * Runs `work` in one transaction; `sql` executes inside it. Every transaction here locks the
   * user's row before its link tokens, so they cannot deadlock one another; should PostgreSQL still
   * abort one (a deadlock with other work, a serialization failure), it is run again from the start,
   * and after the last try it is a 503, never a 500.
   */
  async function inTransaction<T> (work: (sql: (query: string, params: unknown[]) => Promise<Row[]>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        // The connection's transaction, not the EntityManager's: that one runs in an AsyncLocalStorage
        // (see create in ../user-repository.ts).
        const connection = orm().em.getConnection()
        return await guard(() => connection.transactional(async trx =>
          work((query, params) => connection.execute<Row[]>(query, params, 'all', trx))))
      } catch (err) {
        if (!isTransactionConflict(err)) throw err
        if (attempt >= TRANSACTION_ATTEMPTS) throw new DependencyError('postgres', err)
        log.warn({ attempt, err: logSafeError(err) }, 'link tokens: transaction aborted by PostgreSQL (deadlock or serialization failure); running it again')
      }
    }
  }

  /** Locks the user's row, then ends every live token of the purpose. */
  async function lockUserAndSupersede (sql: (query: string, params: unknown[]) => Promise<Row[]>, userId: string, purpose: LinkPurpose, now: number): Promise<void> {
    // The user's row lock orders concurrent requests, so exactly one token stays live.
    await sql('select id from users where id = ? for update', [userId])
    await sql(`update link_tokens set superseded_at = ?::timestamptz
               where user_id = ? and purpose = ? and used_at is null and superseded_at is null`, [at(now), userId, purpose])
  }

  /** Why a token that could not be spent fails: unknown, used, superseded or expired, in that order. */
  async function reasonRefused (tokenHash: string, purpose: LinkPurpose, now: number): Promise<TollgateError> {
    const rows = await orm().em.getConnection().execute<Row[]>(
      `select used_at is not null as used, superseded_at is not null as superseded, expires_at <= ?::timestamptz as expired
       from link_tokens where token_hash = ? and purpose = ? limit 1`, [at(now), tokenHash, purpose])
    const row = rows[0]
    if (!row) return new UnknownLinkTokenError()
    if (row.used === true) return new UsedLinkTokenError()
    if (row.superseded === true) return new SupersededLinkTokenError()
    if (row.expired === true) return new ExpiredLinkTokenError()
    // It was usable a moment ago: a concurrent request has just spent it.
    return new UsedLinkTokenError()
  }

  /**
   * Spends the token and runs `apply` for its holder in the same transaction: either both happen or
   * neither (the token stays usable when `apply` fails). A second concurrent use finds it spent.
   */
  async function redeem<T> (token: string, purpose: LinkPurpose, now: number, apply: (holder: LinkHolder, sql: (query: string, params: unknown[]) => Promise<Row[]>) => Promise<T>): Promise<T> {
    const tokenHash = hashLinkToken(token)
    const result = await inTransaction(async sql => {
      // The holder's row first, as `issue` and `supersede` lock it: one lock order, no deadlock.
      await sql('select id from users where id = (select user_id from link_tokens where token_hash = ? and purpose = ?) for update', [tokenHash, purpose])
      const rows = await sql(
        `update link_tokens set used_at = ?::timestamptz
         where token_hash = ? and purpose = ? and used_at is null and superseded_at is null and expires_at > ?::timestamptz
         returning user_id, email`, [at(now), tokenHash, purpose, at(now)])
      const row = rows[0]
      if (!row) return { refused: true as const }
      return { refused: false as const, value: await apply({ userId: String(row.user_id), email: String(row.email) }, sql) }
    })
    if (result.refused) throw await guard(() => reasonRefused(tokenHash, purpose, now))
    return result.value
  }

  return {
    /**
     * A new token for the user's current address; every live one of the same purpose is superseded.
     * Returns the token itself, which only the mail will carry.
     */
    async issue (input: { userId: string, email: string, purpose: LinkPurpose, now: number }): Promise<string> {
      const { userId, email, purpose, now } = input
      const token = newLinkToken()
      await inTransaction(async sql => {
        await lockUserAndSupersede(sql, userId, purpose, now)
        await sql('delete from link_tokens where user_id = ? and expires_at < ?::timestamptz', [userId, at(now - KEEP_AFTER_EXPIRY_MS)])
        await sql(`insert into link_tokens (id, user_id, purpose, token_hash, email, created_at, expires_at)
                   values (?, ?, ?, ?, ?, ?::timestamptz, ?::timestamptz)`,
        [randomUUID(), userId, purpose, hashLinkToken(token), email, at(now), at(now + LINK_LIFETIME_MS[purpose])])
      })
      return token
    },

    /** Ends the user's live tokens of one purpose (a password change ends the reset links). */
    async supersede (input: { userId: string, purpose: LinkPurpose, now: number }): Promise<void> {
      const { userId, purpose, now } = input
      await inTransaction(sql => lockUserAndSupersede(sql, userId, purpose, now))
    },

    /** The holder of a usable token, without spending it; the link error otherwise. */
    async inspect (token: string, purpose: LinkPurpose, now: number): Promise<LinkHolder> {
      const tokenHash = hashLinkToken(token)
      const rows = await guard(() => orm().em.getConnection().execute<Row[]>(
        `select user_id, email from link_tokens
         where token_hash = ? and purpose = ? and used_at is null and superseded_at is null and expires_at > ?::timestamptz limit 1`,
        [tokenHash, purpose, at(now)]))
      const row = rows[0]
      if (!row) throw await guard(() => reasonRefused(tokenHash, purpose, now))
      return { userId: String(row.user_id), email: String(row.email) }
    },

    /** Spends a verification token: the address it was mailed to is verified, if it is still the user's. */
    async verifyEmail (token: string, now: number): Promise<LinkHolder> {
      return redeem(token, 'verify_email', now, async (holder, sql) => {
        const rows = await sql('update users set email_verified = true, updated_at = ?::timestamptz where id = ? and email = ? returning id', [at(Date.now()), holder.userId, holder.email])
        // The account's address is no longer the one this link went to.
        if (rows.length === 0) throw new UnknownLinkTokenError()
        return holder
      })
    },

    /**
     * Spends a reset token: the new password hash is stored and the address verified (the link
     * proved it). `beforeCommit` runs inside the transaction (ending the sessions): if it fails,
     * nothing changes and the link still works.
     */
    async resetPassword (token: string, now: number, passwordHash: string, beforeCommit: (holder: LinkHolder) => Promise<void>): Promise<LinkHolder> {
      return redeem(token, 'reset_password', now, async (holder, sql) => {
        const rows = await sql('update users set password_hash = ?, email_verified = true, updated_at = ?::timestamptz where id = ? and email = ? returning id', [passwordHash, at(Date.now()), holder.userId, holder.email])
        if (rows.length === 0) throw new UnknownLinkTokenError()
        await beforeCommit(holder)
        return holder
      })
    }
  }
}

export type LinkTokenRepository = ReturnType<typeof createLinkTokenRepository>

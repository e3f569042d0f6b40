import { UniqueConstraintViolationException, type MikroORM } from '@mikro-orm/core'
import { PostgreSqlDriver, type MikroORM as PostgreSqlORM } from '@mikro-orm/postgresql'
import { batchedReads } from './batched-reads.js'
import { User, normaliseEmail } from './entities/user.js'
import { DependencyError, EmailTakenError } from './errors.js'

const USER_COLUMNS = 'id, email, name, password_hash, roles, email_verified, created_at, updated_at'
// Named: node-postgres prepares it on each connection the first time, then only binds and executes.
const USERS_BY_IDS = { name: 'tollgate_users_by_ids', text: `select ${USER_COLUMNS} from users where id = any($1::uuid[])` }
// Ids come from verified tokens, but a malformed one must not fail the batch it shares.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const MAX_BATCH = 100

/** The node-postgres client behind one of knex's pooled connections (only what is used here). */
interface PooledConnection {
  query (query: { name: string, text: string, values: unknown[] }): Promise<{ rows: Array<Record<string, unknown>> }>
}

/**
 * Users in PostgreSQL. Lookups take only schema-validated strings (MikroORM reads objects as operators).
 * `orm` gives the ORM once the database is open (the plugin opens it while the app boots).
 */
export function createUserRepository (orm: () => MikroORM) {
  // A fresh EntityManager per call: no request context to set up on the hot path.
  const em = () => orm().em.fork()

  async function guard<T> (run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      // Redis's 503 from inside a transaction passes as it is.
      if (err instanceof DependencyError) throw err
      if (err instanceof UniqueConstraintViolationException) throw new EmailTakenError()
      if (isConnectionFailure(err)) throw new DependencyError('postgres', err)
      throw err
    }
  }

  // Reads are one parameterised SELECT through the ORM's connection: no unit of work, identity map
  // or hydration on the hot paths (login, refresh, /users/me). Writes go by primary key.
  // pg (as MikroORM configures it) returns timestamps as strings, PGlite as Dates.
  const toDate = (value: unknown) => value instanceof Date ? value : orm().em.getPlatform().parseDate(value as string)

  // Whether reads by id are batched: known once the ORM is open, then the same for every request.
  let batchesById: boolean | undefined

  async function findOneBy (column: 'id' | 'email', value: string): Promise<User | null> {
    if (column === 'id' && (batchesById ??= orm().config.get('driver') === PostgreSqlDriver)) {
      if (!UUID.test(value)) return null
      return await batchedById(value.toLowerCase()) ?? null
    }
    const rows = await orm().em.getConnection().execute<Array<Record<string, unknown>>>(
      `select ${USER_COLUMNS} from users where ${column} = ? limit 1`, [value])
    const row = rows[0]
    return row ? toUser(row) : null
  }

  function toUser (row: Record<string, unknown>): User {
    return Object.assign(new User(), {
      id: row.id,
      email: row.email,
      name: row.name,
      passwordHash: row.password_hash,
      roles: row.roles,
      emailVerified: row.email_verified === true,
      createdAt: toDate(row.created_at),
      updatedAt: toDate(row.updated_at)
    })
  }

  // The read by id (every GET /users/me) on a PostgreSQL server: the reads of one event-loop turn
  // as one named prepared statement, which each pooled connection parses and plans once, sent
  // straight to the driver on a connection of the ORM's own pool (its timeouts and failure handling
  // apply). PGlite takes the general path.
  const batchedById = batchedReads(async (ids: string[]) => {
    const pool = (orm() as unknown as PostgreSqlORM).em.getConnection().getKnex().client
    const connection = await pool.acquireConnection() as PooledConnection
    try {
      const { rows } = await connection.query({ ...USERS_BY_IDS, values: [ids] })
      return new Map(rows.map(row => [row.id as string, toUser(row)]))
    } finally {
      pool.releaseConnection(connection)
    }
  }, MAX_BATCH)

  // A write the caller's password check allowed, done only if the hash it checked is still stored,
  // with `beforeCommit` in the same transaction. The connection's transaction, not the EntityManager's
  // (see create).
  function ifStillHash (query: string, params: unknown[], beforeCommit: () => Promise<void>): Promise<boolean> {
    return guard(async () => {
      const connection = orm().em.getConnection()
      return await connection.transactional(async trx => {
        const rows = await connection.execute<Array<{ id: string }>>(query, params, 'all', trx)
        if (rows.length === 0) return false
        await beforeCommit()
        return true
      })
    })
  }

  return {
    findByEmail: (email: string) => guard(() => findOneBy('email', normaliseEmail(email))),
    findById: (id: string) => guard(() => findOneBy('id', id)),

    // An insert, not persistAndFlush: a flush runs in an AsyncLocalStorage, which on Node 20 turns on
    // promise hooks for the whole process, for good, and every later request pays (issue 13).
    create: (input: { email: string, name: string | null, passwordHash: string }) => guard(async () => {
      const user = Object.assign(new User(), { ...input, email: normaliseEmail(input.email) })
      await em().insert(user)
      return user
    }),

    /**
     * The user's password hash as committed, null without the user. FOR SHARE: a password reset or
     * change still in its transaction is waited for, so the answer is the hash it commits.
     */
    passwordHashOf: (id: string) => guard(async () => {
      const rows = await orm().em.getConnection().execute<Array<{ password_hash: string }>>('select password_hash from users where id = ? for share', [id])
      return rows[0]?.password_hash ?? null
    }),

    /**
     * Stores a new password hash if the stored one is still `checkedHash`, the one the current
     * password was just verified against; false, changing nothing, if a reset or another change
     * committed in between (or the user is gone). `beforeCommit` (ending sessions) runs in the same
     * transaction: if it fails, the hash stays as it was. The update's row lock makes a login's
     * passwordHashOf wait for the outcome. The transaction holds a connection across that Redis call
     * (at most its 1 s deadline), as a password reset does; on PGlite that is the only one.
     */
    replacePasswordHash: (id: string, checkedHash: string, passwordHash: string, beforeCommit: () => Promise<void>) =>
      ifStillHash('update users set password_hash = ?, updated_at = ?::timestamptz where id = ? and password_hash = ? returning id',
        [passwordHash, new Date().toISOString(), id, checkedHash], beforeCommit),

    /** Deletes the user if its hash is still `checkedHash`, as replacePasswordHash; `beforeCommit` ends the sessions. */
    remove: (id: string, checkedHash: string, beforeCommit: () => Promise<void>) =>
      ifStillHash('delete from users where id = ? and password_hash = ? returning id', [id, checkedHash], beforeCommit),
    ping: () => guard(() => orm().em.getConnection().execute('select 1')).then(() => undefined)
  }
}

export type UserRepository = ReturnType<typeof createUserRepository>

// Any failure to get or keep a working connection means PostgreSQL is away (failover, maintenance,
// overload), not that the request is wrong: 503 with Retry-After. A query error (23505, 42xxx, a bug)
// is none of the below, so it stays a 409 or a 500.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH'])
// By SQLSTATE class, since the server refuses a session in many ways: 08 connection exception,
// 28 role or password refused, 53 insufficient resources (too many clients, out of memory or disk),
// 57 operator intervention (shut down, starting up, terminated, statement_timeout 57014), and 3D000
// database does not exist.
const UNAVAILABLE_SQLSTATE = /^(?:08|28|53|57)[0-9A-Z]{3}$|^3D000$/
// 55000 is also a query's "object not in prerequisite state": only its connect-time refusal counts.
const NOT_ACCEPTING = /not currently accepting connections/i
// pg and the pool report timeouts and dropped connections by message only.
const UNAVAILABLE_MESSAGE = /timeout expired|timeout exceeded|timeout acquiring|connection terminated|connection ended|connection error|ECONNREFUSED/i

interface Failure { name?: string, code?: string, severity?: string, message?: string, cause?: unknown }

// Walks the cause chain: MikroORM wraps driver errors (copying code and severity), knex and pg
// pass connect errors through as they are.
function isConnectionFailure (err: unknown): boolean {
  for (let e = err as Failure | undefined, depth = 0; e && depth < 5; e = e.cause as Failure | undefined, depth++) {
    if (e.name === 'ConnectionException' || e.name === 'KnexTimeoutError') return true
    // The server sends FATAL (or PANIC) only when it ends the session: never a query's own error.
    if (e.severity === 'FATAL' || e.severity === 'PANIC') return true
    if (e.code && (NETWORK_CODES.has(e.code) || UNAVAILABLE_SQLSTATE.test(e.code))) return true
    if (e.code === '55000' && NOT_ACCEPTING.test(e.message ?? '')) return true
    if (UNAVAILABLE_MESSAGE.test(e.message ?? '')) return true
  }
  return false
}

// The same recognition for the other tables' repositories (src/recovery/link-token-repository.ts).
export { isConnectionFailure }

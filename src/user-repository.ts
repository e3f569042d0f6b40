import { UniqueConstraintViolationException, type MikroORM } from '@mikro-orm/core'
import { User, normaliseEmail } from './entities/user.js'
import { DependencyError, EmailTakenError } from './errors.js'

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
      if (err instanceof UniqueConstraintViolationException) throw new EmailTakenError()
      if (isConnectionFailure(err)) throw new DependencyError('postgres', err)
      throw err
    }
  }

  // Reads are one parameterised SELECT through the ORM's connection: no unit of work, identity map
  // or hydration on the hot paths (login, refresh, /users/me). Writes go by primary key.
  // pg (as MikroORM configures it) returns timestamps as strings, PGlite as Dates.
  const toDate = (value: unknown) => value instanceof Date ? value : orm().em.getPlatform().parseDate(value as string)

  async function findOneBy (column: 'id' | 'email', value: string): Promise<User | null> {
    const rows = await orm().em.getConnection().execute<Array<Record<string, unknown>>>(
      `select id, email, name, password_hash, roles, created_at, updated_at from users where ${column} = ? limit 1`, [value])
    const row = rows[0]
    if (!row) return null
    return Object.assign(new User(), {
      id: row.id,
      email: row.email,
      name: row.name,
      passwordHash: row.password_hash,
      roles: row.roles,
      createdAt: toDate(row.created_at),
      updatedAt: toDate(row.updated_at)
    })
  }

  return {
    findByEmail: (email: string) => guard(() => findOneBy('email', normaliseEmail(email))),
    findById: (id: string) => guard(() => findOneBy('id', id)),

    create: (input: { email: string, name: string | null, passwordHash: string }) => guard(async () => {
      const user = Object.assign(new User(), { ...input, email: normaliseEmail(input.email) })
      await em().persistAndFlush(user)
      return user
    }),

    setPasswordHash: (id: string, passwordHash: string) =>
      guard(() => em().nativeUpdate(User, { id }, { passwordHash, updatedAt: new Date() })).then(() => undefined),
    remove: (id: string) => guard(() => em().nativeDelete(User, { id })).then(() => undefined),
    ping: () => guard(() => orm().em.getConnection().execute('select 1')).then(() => undefined)
  }
}

export type UserRepository = ReturnType<typeof createUserRepository>

// Network errors, PostgreSQL's "cannot connect now"/"admin shutdown"/connection classes (08xxx, 57P0x)
// and statement_timeout (57014): PostgreSQL is away or too slow, so the request is a 503.
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '57014', '08000', '08001', '08003', '08004', '08006'])
// pg and the pool report timeouts and dropped connections by message only.
const UNAVAILABLE_MESSAGE = /timeout expired|timeout exceeded|timeout acquiring|connection terminated|connection ended|connection error|ECONNREFUSED/i

function isConnectionFailure (err: unknown): boolean {
  for (let e = err as { name?: string, code?: string, message?: string, cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.name === 'ConnectionException' || e.name === 'KnexTimeoutError') return true
    if (e.code && UNAVAILABLE_CODES.has(e.code)) return true
    if (UNAVAILABLE_MESSAGE.test(e.message ?? '')) return true
  }
  return false
}

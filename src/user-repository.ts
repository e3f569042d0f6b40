import { UniqueConstraintViolationException, type MikroORM } from '@mikro-orm/core'
import { User, normaliseEmail } from './entities/user.js'
import { DependencyError, EmailTakenError } from './errors.js'

/** Users in PostgreSQL. Lookups take only schema-validated strings (MikroORM reads objects as operators). */
export function createUserRepository (orm: MikroORM) {
  // Inside a request this is the request's fork (RequestContext); see plugins/orm.ts.
  const em = () => orm.em

  async function guard<T> (run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      if (err instanceof UniqueConstraintViolationException) throw new EmailTakenError()
      if (isConnectionFailure(err)) throw new DependencyError('postgres', err)
      throw err
    }
  }

  return {
    findByEmail: (email: string) => guard(() => em().findOne(User, { email: normaliseEmail(email) })),
    findById: (id: string) => guard(() => em().findOne(User, { id })),

    create: (input: { email: string, name: string | null, passwordHash: string }) => guard(async () => {
      const user = Object.assign(new User(), { ...input, email: normaliseEmail(input.email) })
      await em().persistAndFlush(user)
      return user
    }),

    update: (user: User) => guard(() => em().flush()),
    remove: (user: User) => guard(() => em().removeAndFlush(user)),
    ping: () => guard(() => em().getConnection().execute('select 1')).then(() => undefined)
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

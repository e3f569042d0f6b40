import { DriverException, UniqueConstraintViolationException, type MikroORM } from '@mikro-orm/core'
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

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P03', '08006', '08001', '08003'])

function isConnectionFailure (err: unknown): boolean {
  for (let e = err as { name?: string, code?: string, message?: string, cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.name === 'ConnectionException' || e.name === 'KnexTimeoutError') return true
    if (e.code && NETWORK_CODES.has(e.code)) return true
    if (/connection terminated|timeout exceeded when trying to connect|Connection terminated/i.test(e.message ?? '')) return true
  }
  return err instanceof DriverException && /connect/i.test((err as Error).message)
}

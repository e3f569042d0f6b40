/** What the log may say about an error: no SQL, and so none of the values a statement carried. */
export interface LogSafeError {
  name?: string
  /** The error's code: a SQLSTATE, a network code such as ECONNREFUSED, a Fastify code. */
  code?: string
  message: string
  /** The stack's frames only (its first line repeats the message). */
  stack?: string
  cause?: LogSafeError
}

type Failure = { name?: unknown, code?: unknown, message?: unknown, stack?: unknown, cause?: unknown }

const MAX_MESSAGE = 300

/**
 * Name, code and the database's own words, for the log. knex (under MikroORM) starts a failed
 * query's message with the whole statement, values inlined (an address, a token's hash, a new
 * password's argon2 hash), `<sql> - <message>`, and MikroORM appends `detail`, which can quote a
 * value too: only the part after the last ` - ` of the first line is kept. The driver error object
 * itself, whose properties repeat all of it, is never handed to the logger.
 */
export function logSafeError (err: unknown, depth = 0): LogSafeError {
  if (err === null || typeof err !== 'object') return { message: String(err).slice(0, MAX_MESSAGE) }
  const e = err as Failure
  const firstLine = String(e.message ?? '').split('\n')[0] ?? ''
  const message = (firstLine.split(' - ').at(-1) ?? '').slice(0, MAX_MESSAGE)
  const frames = typeof e.stack === 'string' ? e.stack.split('\n').filter(line => line.trim().startsWith('at ')).join('\n') : ''
  return {
    ...(typeof e.name === 'string' && { name: e.name }),
    ...((typeof e.code === 'string' || typeof e.code === 'number') && { code: String(e.code) }),
    message,
    ...(frames && { stack: frames }),
    ...(e.cause !== undefined && depth < 3 && { cause: logSafeError(e.cause, depth + 1) })
  }
}

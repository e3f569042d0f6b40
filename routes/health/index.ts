import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RETRY_AFTER, documented } from '../../src/schemas.js'

const CHECK_TIMEOUT_MS = 1500
const Check = Type.Union([Type.Literal('up'), Type.Literal('down')])
type CheckResult = 'up' | 'down' | 'migrations_pending'
const ReadySchema = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  checks: Type.Object({
    database: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('migrations_pending')], {
      description: '`migrations_pending`: it answers, but its schema lacks migrations this version needs (run `npm run migrate`)'
    }),
    token_store: Check
  }),
  backends: Type.Object({
    database: Type.String({ description: 'postgresql or pglite (embedded)' }),
    token_store: Type.String({ description: 'redis, memory (embedded, one process only) or a host\'s own store' })
  })
})

async function probe<T extends CheckResult> (check: () => Promise<T>): Promise<T | 'down'> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'down'>(resolve => { timer = setTimeout(() => resolve('down'), CHECK_TIMEOUT_MS) })
  try {
    // Through a promise, so that a check that throws at once counts as down too.
    return await Promise.race([Promise.resolve().then(check).catch(() => 'down' as const), timeout])
  } finally {
    clearTimeout(timer)
  }
}

const healthRoutes: FastifyPluginAsyncTypebox = async function healthRoutes (fastify) {
  // Once current, a schema stays so (migrations only add): then a probe is one `select 1`.
  let schemaCurrent = false
  async function databaseCheck (): Promise<'up' | 'migrations_pending'> {
    await fastify.tollgate.users.ping()
    if (schemaCurrent) return 'up'
    if ((await fastify.tollgate.pendingMigrations()).length > 0) return 'migrations_pending'
    schemaCurrent = true
    return 'up'
  }

  fastify.get('/live', {
    schema: {
      tags: ['health'],
      summary: 'The process is up',
      description: 'For a liveness probe: answers as long as the process runs, without asking the database or the token store.',
      operationId: 'getLiveness',
      security: [],
      response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'The process is up' }) }
    }
  }, async function live () {
    return { status: 'ok' as const }
  })

  fastify.get('/ready', {
    schema: {
      tags: ['health'],
      summary: 'The database and the token store answer',
      description: 'For a readiness probe or a load balancer: asks the database and the token store, each within 1.5 s, and whether the database\'s schema has every migration this version needs. While either is down or migrations are pending the answer is 503, and `checks` says which.',
      operationId: 'getReadiness',
      security: [],
      response: {
        200: documented(ReadySchema, 'Ready: both answer'),
        503: documented(ReadySchema, 'Not ready: the database or the token store does not answer, or the schema lacks migrations; retry after Retry-After', RETRY_AFTER)
      }
    }
  }, async function ready (request, reply) {
    const { tokenStore: store, databaseKind } = fastify.tollgate
    const [database, tokenStore] = await Promise.all([probe(databaseCheck), probe(async () => { await store.ping(); return 'up' as const })])
    const ok = database === 'up' && tokenStore === 'up'
    if (!ok) reply.code(503).header('retry-after', '5')
    return {
      status: ok ? 'ready' as const : 'unavailable' as const,
      checks: { database, token_store: tokenStore },
      backends: { database: databaseKind, token_store: store.kind }
    }
  })
}

export default healthRoutes

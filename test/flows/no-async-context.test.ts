import { AsyncLocalStorage } from 'node:async_hooks'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import type { FastifyInstance, InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import { openDatabase } from '../../src/database.js'
import { User } from '../../src/entities/user.js'
import { bearer, build, createTestDatabase, login, refresh, tempDir, type BuildOptions } from '../helper.js'
import { linkToken, startSmtpServer } from '../recovery/support.js'

// On Node 20 the first AsyncLocalStorage.run (or enterWith) turns on promise hooks for the whole
// process, for good, and every promise of every later request pays for them: 7-29 % more CPU per
// request in the bench (issue 13). MikroORM runs one inside each flush and EntityManager
// transaction, so Tollgate's writes go around both. This walks a flow through every kind of
// database write (user insert, link-token transactions, updates, delete) and checks that nothing
// starts one.

const PASSWORD = 'correct horse battery staple'

interface Started { method: string, stack: string }

function watchAsyncLocalStorage (t: Parameters<typeof build>[0]): Started[] {
  const started: Started[] = []
  const proto = AsyncLocalStorage.prototype as unknown as Record<'run' | 'enterWith', (...args: unknown[]) => unknown>
  for (const method of ['run', 'enterWith'] as const) {
    const original = proto[method]
    proto[method] = function (this: unknown, ...args: unknown[]) {
      started.push({ method, stack: new Error('started here').stack ?? '' })
      return original.apply(this, args)
    }
    t.teardown(() => { proto[method] = original })
  }
  return started
}

async function expectStatus (app: FastifyInstance, request: InjectOptions, status: number) {
  const res = await app.inject(request)
  if (res.statusCode !== status) throw new Error(`${JSON.stringify(request)}: ${res.statusCode} ${res.body}`)
  return res
}

async function everyWrite (t: Test, config: NonNullable<BuildOptions['config']>) {
  const smtp = await startSmtpServer(t)
  // From before the boot: the migrations of the fresh database run in a transaction too.
  const started = watchAsyncLocalStorage(t)
  const app = await build(t, { config: { SMTP_URL: smtp.url, APP_URL: 'https://app.example.com', ...config } })
  const email = `no-async-context-${randomUUID()}@example.com`

  await expectStatus(app, { method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } }, 201)
  const verification = linkToken((await smtp.nextMailTo(email)).text, 'verify-email')
  await expectStatus(app, { method: 'POST', url: '/auth/email/verify', payload: { token: verification } }, 204)

  const first = await login(app, email, PASSWORD)
  const rotated = (await refresh(app, first.refresh_token)).json()
  await expectStatus(app, { method: 'GET', url: '/users/me', headers: bearer(rotated.access_token) }, 200)
  const second = await login(app, email, PASSWORD)
  await expectStatus(app, { method: 'POST', url: '/auth/password', headers: bearer(second.access_token), payload: { current_password: PASSWORD, new_password: 'a second passphrase' } }, 204)

  await expectStatus(app, { method: 'POST', url: '/auth/password/forgot', payload: { email } }, 202)
  const reset = linkToken((await smtp.nextMailTo(email)).text, 'reset-password')
  await expectStatus(app, { method: 'POST', url: '/auth/password/reset', payload: { token: reset, new_password: 'a third passphrase' } }, 204)
  await smtp.nextMailTo(email) // the notice that the password changed, sent after the answer

  const third = await login(app, email, 'a third passphrase')
  await expectStatus(app, { method: 'POST', url: '/auth/logout', headers: bearer(third.access_token) }, 204)
  const last = await login(app, email, 'a third passphrase')
  await expectStatus(app, { method: 'POST', url: '/auth/logout-all', headers: bearer(last.access_token) }, 204)
  const closing = await login(app, email, 'a third passphrase')
  await expectStatus(app, { method: 'DELETE', url: '/users/me', headers: bearer(closing.access_token), payload: { password: 'a third passphrase' } }, 204)

  t.same(started.map(s => s.stack), [], 'no AsyncLocalStorage was started')
}

t.test('neither the boot (with its migrations) nor any route starts an AsyncLocalStorage: register, verify, log in, refresh, change and reset the password, log out, delete', async t => {
  t.test('on PostgreSQL and Redis', t => everyWrite(t, {}))
  t.test('on the embedded default (PGlite, in-process store)', async t => {
    await everyWrite(t, { DATABASE_URL: undefined, REDIS_URL: undefined, DATA_DIR: join(await tempDir(t), 'data') })
  })
})

t.test('the watch sees the AsyncLocalStorage of a flush through the EntityManager, which MikroORM still starts', async t => {
  const database = await openDatabase({ url: await createTestDatabase(t) })
  t.teardown(() => database.close())
  await database.migrate()
  const started = watchAsyncLocalStorage(t)
  await database.orm.em.fork().persistAndFlush(Object.assign(new User(), { email: `flush-${randomUUID()}@example.com`, passwordHash: 'x' }))
  t.ok(started.some(s => s.stack.includes('@mikro-orm')), 'MikroORM started one in its flush')
})

import t from 'tap'
import { POSTGRES_URL, bearer, build, createTestDatabase, registerAndLogin } from '../helper.js'
import { tcpProxy, type ProxyMode } from './tcp-proxy.js'

// PostgreSQL behind a proxy the test can cut: register, login and readiness must answer 503
// (never 401, never 500) while it is gone, and work again when it is back, without a restart.

const FAIL_FAST_MS = 5_000
const RECOVERY_DEADLINE_MS = 15_000

for (const mode of ['refuse', 'hang'] as ProxyMode[]) {
  t.test(`PostgreSQL unreachable (${mode}): 503 with Retry-After, then recovery`, async t => {
    const direct = new URL(await createTestDatabase(t))
    const proxy = await tcpProxy(t, { host: direct.hostname, port: Number(direct.port || 5432) })
    const viaProxy = `${POSTGRES_URL.replace(/:\d+$/, `:${proxy.port}`)}${direct.pathname}`
    const app = await build(t, { config: { DATABASE_URL: viaProxy } })
    const { email, password, tokens } = await registerAndLogin(app)

    proxy.set(mode)
    const requests = {
      register: () => app.inject({ method: 'POST', url: '/auth/register', payload: { email: `other-${mode}@example.com`, password } }),
      login: () => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } }),
      ready: () => app.inject({ method: 'GET', url: '/health/ready' }),
      me: () => app.inject({ method: 'GET', url: '/users/me', headers: bearer(tokens.access_token) })
    }
    for (const [name, send] of Object.entries(requests)) {
      const started = Date.now()
      const res = await send()
      t.equal(res.statusCode, 503, `${name} is 503 while PostgreSQL is away`)
      t.ok(res.headers['retry-after'], `${name} sends Retry-After`)
      t.ok(Date.now() - started < FAIL_FAST_MS, `${name} fails fast, not after the client's timeout`)
      t.notMatch(res.body, /ECONN|pg|knex|mikro|password/i, `${name} leaks no driver detail`)
    }
    t.equal((await requests.ready()).json().checks.database, 'down')

    proxy.set('forward')
    const deadline = Date.now() + RECOVERY_DEADLINE_MS
    let login = await requests.login()
    while (login.statusCode !== 200 && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 250))
      login = await requests.login()
    }
    t.equal(login.statusCode, 200, 'login works again without a restart')
    t.equal((await requests.register()).statusCode, 201)
    t.equal((await requests.ready()).statusCode, 200)
  })
}

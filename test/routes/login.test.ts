import { randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { assertErrorShape, headerOf } from '../fixtures.js'
import { build, claimsOf, redisClient, registerAndLogin } from '../helper.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const PASSWORD = 'correct horse battery staple'

async function register (app: Awaited<ReturnType<typeof build>>, email: string, password = PASSWORD) {
  const res = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password } })
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  return res.json() as { id: string }
}

const login = (app: Awaited<ReturnType<typeof build>>, payload: unknown) =>
  app.inject({ method: 'POST', url: '/auth/login', payload: payload as Record<string, unknown> })

t.test('POST /auth/login answers an RFC 6749 token response that must not be cached', async t => {
  const config = { JWT_ISSUER: 'https://auth.example', JWT_AUDIENCE: 'example-api', ACCESS_TOKEN_TTL: 300, REFRESH_IDLE_TTL: 3600 }
  const app = await build(t, { config })
  const email = `login-${randomUUID()}@example.com`
  const { id: userId } = await register(app, email)

  const res = await login(app, { email, password: PASSWORD })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
  const body = res.json()
  t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type'])
  t.equal(body.token_type, 'Bearer')
  t.equal(body.expires_in, 300)
  t.equal(body.refresh_expires_in, 3600)
  t.type(body.access_token, 'string')
  t.type(body.refresh_token, 'string')

  t.test('the access token is an RFC 9068 at+jwt signed EdDSA under the published kid', async t => {
    const header = headerOf(body.access_token)
    t.equal(header.typ, 'at+jwt')
    t.equal(header.alg, 'EdDSA')
    const jwks = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
    t.equal(jwks.statusCode, 200)
    t.type(header.kid, 'string')
    t.equal(header.kid, jwks.json().keys[0].kid)
  })

  t.test('the access token carries iss, aud, sub, client_id, iat, exp, jti, sid and roles', async t => {
    const claims = claimsOf(body.access_token)
    t.same(Object.keys(claims).sort(), ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'roles', 'sid', 'sub'])
    t.equal(claims.iss, 'https://auth.example')
    t.equal(claims.aud, 'example-api')
    t.equal(claims.sub, userId)
    t.type(claims.client_id, 'string')
    t.ok((claims.client_id as string).length > 0, 'client_id is not empty')
    t.ok(Number.isInteger(claims.iat), 'iat is an integer')
    t.equal(claims.exp, (claims.iat as number) + 300, 'exp = iat + ACCESS_TOKEN_TTL')
    t.ok(Math.abs((claims.iat as number) - Date.now() / 1000) < 60, 'iat is now')
    t.match(claims.jti, UUID)
    t.match(claims.sid, UUID)
    t.same(claims.roles, [])
  })

  t.test('the refresh token is an rt+jwt of the same session, with its own audience', async t => {
    const header = headerOf(body.refresh_token)
    const claims = claimsOf(body.refresh_token)
    t.equal(header.typ, 'rt+jwt')
    t.equal(claims.sid, claimsOf(body.access_token).sid)
    t.equal(claims.sub, userId)
    t.equal(claims.iss, 'https://auth.example')
    t.not(claims.aud, 'example-api', 'not the access audience')
    t.match(claims.jti, UUID)
    t.not(claims.jti, claimsOf(body.access_token).jti)
    t.equal(claims.exp, (claims.iat as number) + 3600, 'lives for the idle timeout')
  })

  t.test('the body carries no user record or password hash', async t => {
    t.notMatch(res.body, /argon2|password/i)
  })
})

t.test('POST /auth/login compares the email case-insensitively', async t => {
  const app = await build(t)
  const email = `case-${randomUUID()}@example.com`
  await register(app, email)
  const res = await login(app, { email: email.toUpperCase(), password: PASSWORD })
  t.equal(res.statusCode, 200)
})

t.test('a wrong password and an unknown email get byte-identical 401 answers', async t => {
  const app = await build(t)
  const email = `known-${randomUUID()}@example.com`
  await register(app, email)
  const wrongPassword = await login(app, { email, password: 'not the password' })
  const unknownEmail = await login(app, { email: `unknown-${randomUUID()}@example.com`, password: 'not the password' })

  assertErrorShape(t, wrongPassword, 401)
  t.same(wrongPassword.json(), { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Invalid email or password' })
  t.equal(unknownEmail.statusCode, wrongPassword.statusCode)
  t.equal(unknownEmail.body, wrongPassword.body, 'byte-identical bodies')
  const { date: _a, ...wrongHeaders } = wrongPassword.headers
  const { date: _b, ...unknownHeaders } = unknownEmail.headers
  t.same(unknownHeaders, wrongHeaders, 'same headers apart from date')
  t.notOk(wrongPassword.headers['set-cookie'], 'no cookie')

  t.test('the same for a registered email with the right password in another account', async t => {
    const other = `other-${randomUUID()}@example.com`
    await register(app, other, 'another password here')
    const res = await login(app, { email, password: 'another password here' })
    t.equal(res.body, wrongPassword.body)
  })
})

t.test('POST /auth/login rejects invalid bodies with 400', async t => {
  const app = await build(t)
  const email = `valid-${randomUUID()}@example.com`
  await register(app, email)
  const cases: Array<[string, unknown]> = [
    ['an operator object as email', { email: { $ne: null }, password: 'x' }],
    ['an operator object as password', { email, password: { $ne: null } }],
    ['an array as email', { email: [email], password: PASSWORD }],
    ['a number as password', { email, password: 12345678 }],
    ['a missing password', { email }],
    ['a missing email', { password: PASSWORD }],
    ['an empty password', { email, password: '' }],
    ['a password over 128 characters', { email, password: 'a'.repeat(129) }],
    ['an unknown field', { email, password: PASSWORD, admin: true }],
    ['no body', undefined]
  ]
  for (const [name, payload] of cases) {
    t.test(`400 for ${name}`, async t => {
      const res = await login(app, payload)
      assertErrorShape(t, res, 400)
      t.equal(res.json().code, 'INVALID_REQUEST')
      t.equal(res.json().error, 'Bad Request')
      t.notOk(res.headers['www-authenticate'])
    })
  }
})

t.test('each login adds exactly one jti, its refresh token\'s, to the Redis allowlist', async t => {
  const prefix = `t-login-${randomBytes(6).toString('hex')}`
  const app = await build(t, { config: { REDIS_KEY_PREFIX: prefix } })
  const redis = await redisClient(t)
  const email = `allow-${randomUUID()}@example.com`
  const { id: userId } = await register(app, email)
  const key = `${prefix}:{${userId}}:rt`
  t.same(await redis.smembers(key), [], 'empty before the first login')

  const first = (await login(app, { email, password: PASSWORD })).json()
  const firstJti = claimsOf(first.refresh_token).jti as string
  t.same(await redis.smembers(key), [firstJti])

  const second = (await login(app, { email, password: PASSWORD })).json()
  const secondJti = claimsOf(second.refresh_token).jti as string
  t.same((await redis.smembers(key)).sort(), [firstJti, secondJti].sort(), 'a second login adds one more')
  t.not(claimsOf(second.refresh_token).sid, claimsOf(first.refresh_token).sid, 'a new session per login')

  t.test('a failed login adds nothing', async t => {
    await login(app, { email, password: 'wrong password!' })
    t.equal(await redis.scard(key), 2)
  })

  t.test('the allowlist of another user is untouched', async t => {
    const other = await registerAndLogin(app)
    t.equal(await redis.scard(`${prefix}:{${other.userId}}:rt`), 1)
    t.equal(await redis.scard(key), 2)
  })
})

t.test('a body that is not valid JSON gets a message that says so', async t => {
  const app = await build(t)
  for (const payload of ['{"email": ', '']) {
    const res = await app.inject({ method: 'POST', url: '/auth/login', headers: { 'content-type': 'application/json' }, payload })
    t.equal(res.statusCode, 400)
    t.same(res.json(), { statusCode: 400, code: 'INVALID_REQUEST', error: 'Bad Request', message: 'The request body is not valid JSON' }, JSON.stringify(payload))
  }
  const refreshed = await app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'content-type': 'application/json' }, payload: '{bad' })
  t.same(refreshed.json(), { error: 'invalid_request', error_description: 'The request body is not valid JSON' }, 'in the OAuth shape on the token endpoint')
})

t.test('valid JSON with a __proto__ or constructor.prototype member is refused, and the message says why', async t => {
  const app = await build(t)
  const message = 'The request body has a member named __proto__, or constructor with a member named prototype: such bodies are refused'
  for (const payload of ['{"email":"a@example.com","password":"x","__proto__":{"roles":["admin"]}}', '{"email":"a@example.com","password":"x","constructor":{"prototype":{}}}']) {
    const res = await app.inject({ method: 'POST', url: '/auth/login', headers: { 'content-type': 'application/json' }, payload })
    t.equal(res.statusCode, 400)
    t.same(res.json(), { statusCode: 400, code: 'INVALID_REQUEST', error: 'Bad Request', message }, payload)
  }
  const refreshed = await app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'content-type': 'application/json' }, payload: '{"refresh_token":"x","__proto__":{}}' })
  t.same(refreshed.json(), { error: 'invalid_request', error_description: message }, 'in the OAuth shape on the token endpoint')
})

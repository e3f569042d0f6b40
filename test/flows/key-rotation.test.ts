// Rotating the access-token signing key (DESIGN: several verification keys live at once, one signs):
// the new key signs, the previous one still verifies until its tokens expire, and both are published.
import t from 'tap'
import { forgeAccessToken, headerOf, publicKeyPem } from '../fixtures.js'
import { bearer, build, createTestDatabase, refresh, registerAndLogin, testKeys, type TestApp, type TestContext } from '../helper.js'

/** Servers sharing one database, Redis prefix and refresh secret: one deployment before and after a key change. */
async function deployment (t: TestContext) {
  const databaseUrl = await createTestDatabase(t)
  const old = testKeys()
  const next = { ...testKeys(), refreshSecret: old.refreshSecret }
  const before = await build(t, { keys: old, config: { DATABASE_URL: databaseUrl } })
  const shared = { DATABASE_URL: databaseUrl, REDIS_KEY_PREFIX: before.tollgate.config.REDIS_KEY_PREFIX }
  const after = (config: { ACCESS_TOKEN_PUBLIC_KEYS?: string } = {}) => build(t, { keys: next, config: { ...shared, ...config } })
  return { before, after, oldPublicKey: publicKeyPem(old.accessPrivateKey), newPublicKey: publicKeyPem(next.accessPrivateKey) }
}

const kids = async (app: TestApp) => (await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys.map((k: { kid: string }) => k.kid)
const me = (app: TestApp, token: string) => app.inject({ method: 'GET', url: '/users/me', headers: bearer(token) })

t.test('after a rotation, tokens of the previous key still work and both keys are published', async t => {
  const { before, after, oldPublicKey } = await deployment(t)
  const { userId, tokens } = await registerAndLogin(before)
  const oldKid = headerOf(tokens.access_token).kid

  const rotated = await after({ ACCESS_TOKEN_PUBLIC_KEYS: oldPublicKey })
  const res = await me(rotated, tokens.access_token)
  t.equal(res.statusCode, 200, 'an access token signed by the previous key')
  t.equal(res.json().id, userId)

  const renewed = await refresh(rotated, tokens.refresh_token)
  t.equal(renewed.statusCode, 200, 'the session goes on')
  const newKid = headerOf(renewed.json().access_token).kid
  t.not(newKid, oldKid, 'new tokens are signed by the new key')
  t.equal((await me(rotated, renewed.json().access_token)).statusCode, 200)
  t.same(await kids(rotated), [newKid, oldKid], 'JWKS: the signing key first, then the previous one')
})

t.test('once the previous key is withdrawn, its tokens are refused', async t => {
  const { before, after } = await deployment(t)
  const { tokens } = await registerAndLogin(before)
  const withdrawn = await after()
  t.equal((await me(withdrawn, tokens.access_token)).statusCode, 401)
  t.equal((await kids(withdrawn)).length, 1, 'only the signing key is published')
})

t.test('the next key can be published before it signs; the signing key listed again is ignored', async t => {
  const { before, after, newPublicKey, oldPublicKey } = await deployment(t)
  const publishing = await build(t, {
    keys: before.testKeys,
    config: { DATABASE_URL: before.tollgate.config.DATABASE_URL, REDIS_KEY_PREFIX: before.tollgate.config.REDIS_KEY_PREFIX, ACCESS_TOKEN_PUBLIC_KEYS: `${newPublicKey}\n${oldPublicKey}` }
  })
  const { tokens } = await registerAndLogin(publishing)
  const oldKid = headerOf(tokens.access_token).kid
  const next = await after()
  const nextToken = (await registerAndLogin(next)).tokens.access_token
  const nextKid = headerOf(nextToken).kid
  t.same(await kids(publishing), [oldKid, nextKid], 'the signing key, then the next key; no duplicate')
  t.equal((await me(publishing, tokens.access_token)).statusCode, 200, 'the configured private key still signs')
  t.equal((await me(publishing, nextToken)).statusCode, 200, 'a token of the next key is already accepted')
})

t.test('a token whose kid names another configured key does not verify', async t => {
  const { before, after, oldPublicKey } = await deployment(t)
  const rotated = await after({ ACCESS_TOKEN_PUBLIC_KEYS: oldPublicKey })
  const { tokens } = await registerAndLogin(rotated)
  const oldKid = (await kids(before))[0]
  // Signed by the new key, but naming the old key's kid.
  const swapped = forgeAccessToken(rotated, tokens.access_token, { header: { kid: oldKid } })
  t.equal(headerOf(swapped).kid, oldKid)
  t.equal((await me(rotated, swapped)).statusCode, 401)
  t.equal((await me(rotated, forgeAccessToken(rotated, tokens.access_token))).statusCode, 200, 'control: the same forge with its own kid')
})

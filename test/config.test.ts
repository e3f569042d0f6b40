import { execFile } from 'node:child_process'
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadConfig, type ConfigInput } from '../src/config.js'
import { configError, named } from './config-support.js'
import { testKeys } from './helper.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const secret = () => randomBytes(32).toString('base64url')
const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const p256Pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const ed25519PublicPem = () => generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString()

t.test('defaults', async t => {
  const config = loadConfig({})
  // The documented defaults (settings added later have their own defaults too).
  t.has(config, {
    HOST: '127.0.0.1',
    PORT: 3000,
    REDIS_KEY_PREFIX: 'tollgate',
    DATA_DIR: './.data',
    LOG_LEVEL: 'info',
    JWT_ISSUER: 'tollgate',
    JWT_AUDIENCE: 'tollgate-api',
    ACCESS_TOKEN_ALG: 'EdDSA',
    ACCESS_TOKEN_TTL: 600,
    REFRESH_TOKEN_TTL: 2_592_000,
    REFRESH_IDLE_TTL: 604_800,
    REFRESH_REUSE_INTERVAL: 10,
    CORS_ORIGINS: '',
    TRUST_PROXY: ''
  })
  t.notOk('DATABASE_URL' in config, 'embedded database unless DATABASE_URL is set')
  t.notOk('REDIS_URL' in config, 'in-process token store unless REDIS_URL is set')
  t.notOk('ACCESS_TOKEN_SECRET' in config, 'no built-in secret')
  t.notOk('REFRESH_TOKEN_SECRET' in config, 'no built-in secret')
  t.notOk('ACCESS_TOKEN_PRIVATE_KEY' in config, 'no built-in key')
})

t.test('environment strings are converted and unknown variables ignored', async t => {
  const keys = testKeys()
  const config = loadConfig({
    PORT: '8080',
    ACCESS_TOKEN_TTL: '120',
    LOG_LEVEL: 'warn',
    ACCESS_TOKEN_PRIVATE_KEY: keys.accessPrivateKey,
    REFRESH_TOKEN_SECRET: keys.refreshSecret,
    HOME: '/root',
    PATH: '/usr/bin'
  } as ConfigInput)
  t.equal(config.PORT, 8080)
  t.equal(config.ACCESS_TOKEN_TTL, 120)
  t.equal(config.LOG_LEVEL, 'warn')
  t.equal(config.ACCESS_TOKEN_PRIVATE_KEY, keys.accessPrivateKey)
  t.notOk('HOME' in config)
})

t.test('an empty variable means "not set"', async t => {
  const config = loadConfig({ PORT: '', REFRESH_TOKEN_SECRET: '', ACCESS_TOKEN_PRIVATE_KEY: '' })
  t.equal(config.PORT, 3000)
  t.notOk('REFRESH_TOKEN_SECRET' in config)
})

t.test('ACCESS_TOKEN_PUBLIC_KEYS takes Ed25519 public keys in PEM, one after another', async t => {
  const two = `${ed25519PublicPem()}\n${ed25519PublicPem()}\n`
  t.equal(loadConfig({ ACCESS_TOKEN_PUBLIC_KEYS: two }).ACCESS_TOKEN_PUBLIC_KEYS, two)
})

t.test('HS256 with its own secret is valid', async t => {
  const config = loadConfig({ ACCESS_TOKEN_ALG: 'HS256', ACCESS_TOKEN_SECRET: secret(), REFRESH_TOKEN_SECRET: secret() })
  t.equal(config.ACCESS_TOKEN_ALG, 'HS256')
})

t.test('each bad value throws a ConfigError naming its variable', async t => {
  const cases: Array<[string, ConfigInput, string[]]> = [
    ['PORT=abc', { PORT: 'abc' }, ['PORT']],
    ['PORT=65536', { PORT: '65536' }, ['PORT']],
    ['PORT=-1', { PORT: '-1' }, ['PORT']],
    // Not an integer: must not be truncated to 3000 / read as 3 (parseInt-style conversion).
    ['PORT=3000.5', { PORT: '3000.5' }, ['PORT']],
    ['PORT=3e3', { PORT: '3e3' }, ['PORT']],
    ['LOG_LEVEL=x', { LOG_LEVEL: 'x' }, ['LOG_LEVEL']],
    ['ACCESS_TOKEN_ALG=RS256', { ACCESS_TOKEN_ALG: 'RS256' }, ['ACCESS_TOKEN_ALG']],
    ['ACCESS_TOKEN_ALG=none', { ACCESS_TOKEN_ALG: 'none' }, ['ACCESS_TOKEN_ALG']],
    ['REFRESH_TOKEN_SECRET too short', { REFRESH_TOKEN_SECRET: 'a'.repeat(31) }, ['REFRESH_TOKEN_SECRET']],
    ['ACCESS_TOKEN_SECRET too short', { ACCESS_TOKEN_ALG: 'HS256', ACCESS_TOKEN_SECRET: 'a'.repeat(31) }, ['ACCESS_TOKEN_SECRET']],
    ['REFRESH_IDLE_TTL > REFRESH_TOKEN_TTL', { REFRESH_TOKEN_TTL: '3600', REFRESH_IDLE_TTL: '7200' }, ['REFRESH_IDLE_TTL']],
    ['ACCESS_TOKEN_TTL below its minimum', { ACCESS_TOKEN_TTL: '0' }, ['ACCESS_TOKEN_TTL']],
    ['HS256 without ACCESS_TOKEN_SECRET', { ACCESS_TOKEN_ALG: 'HS256' }, ['ACCESS_TOKEN_SECRET']],
    ['an RSA PEM as ACCESS_TOKEN_PRIVATE_KEY', { ACCESS_TOKEN_PRIVATE_KEY: rsaPem }, ['ACCESS_TOKEN_PRIVATE_KEY']],
    ['a P-256 PEM as ACCESS_TOKEN_PRIVATE_KEY', { ACCESS_TOKEN_PRIVATE_KEY: p256Pem }, ['ACCESS_TOKEN_PRIVATE_KEY']],
    ['garbage as ACCESS_TOKEN_PRIVATE_KEY', { ACCESS_TOKEN_PRIVATE_KEY: 'not a pem' }, ['ACCESS_TOKEN_PRIVATE_KEY']],
    ['a public key as ACCESS_TOKEN_PRIVATE_KEY', {
      ACCESS_TOKEN_PRIVATE_KEY: generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString()
    }, ['ACCESS_TOKEN_PRIVATE_KEY']],
    ['an RSA public key in ACCESS_TOKEN_PUBLIC_KEYS', { ACCESS_TOKEN_PUBLIC_KEYS: createPublicKey(rsaPem).export({ format: 'pem', type: 'spki' }).toString() }, ['ACCESS_TOKEN_PUBLIC_KEYS']],
    ['a private key in ACCESS_TOKEN_PUBLIC_KEYS', { ACCESS_TOKEN_PUBLIC_KEYS: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() }, ['ACCESS_TOKEN_PUBLIC_KEYS']],
    ['garbage after a key in ACCESS_TOKEN_PUBLIC_KEYS', { ACCESS_TOKEN_PUBLIC_KEYS: `${ed25519PublicPem()}\nnot a key` }, ['ACCESS_TOKEN_PUBLIC_KEYS']],
    ['ACCESS_TOKEN_PUBLIC_KEYS with HS256', { ACCESS_TOKEN_ALG: 'HS256', ACCESS_TOKEN_SECRET: 'a'.repeat(40), ACCESS_TOKEN_PUBLIC_KEYS: ed25519PublicPem() }, ['ACCESS_TOKEN_PUBLIC_KEYS']],
    ['DATABASE_URL not postgres://', { DATABASE_URL: 'mysql://localhost/db' }, ['DATABASE_URL']],
    ['REDIS_URL not redis://', { REDIS_URL: 'http://localhost:6379' }, ['REDIS_URL']],
    ['REDIS_KEY_PREFIX with a colon', { REDIS_KEY_PREFIX: 'a:b' }, ['REDIS_KEY_PREFIX']]
  ]
  for (const [name, input, variables] of cases) {
    t.test(name, async t => {
      const error = configError(t, input)
      for (const variable of variables) {
        t.ok(named(error).includes(variable), `problems name ${variable}: ${JSON.stringify(error?.problems)}`)
        t.ok(error?.message.includes(variable), 'so does the message')
      }
    })
  }

  t.test('the same secret for access and refresh tokens', async t => {
    const shared = secret()
    const error = configError(t, { ACCESS_TOKEN_ALG: 'HS256', ACCESS_TOKEN_SECRET: shared, REFRESH_TOKEN_SECRET: shared })
    const names = named(error)
    t.ok(names.includes('REFRESH_TOKEN_SECRET') || names.includes('ACCESS_TOKEN_SECRET'), `problems name a secret: ${JSON.stringify(error?.problems)}`)
    t.notOk(error?.message.includes(shared), 'the message does not print the secret')
  })
})

t.test('no problem message prints a secret or key', async t => {
  const keys = testKeys()
  const error = configError(t, { PORT: 'abc', ACCESS_TOKEN_SECRET: 'short-secret-value', ACCESS_TOKEN_PRIVATE_KEY: rsaPem, REFRESH_TOKEN_SECRET: keys.refreshSecret })
  t.notOk(error?.message.includes('short-secret-value'))
  t.notOk(error?.message.includes('PRIVATE KEY-----'))
  t.notOk(error?.message.includes(keys.refreshSecret))
})

t.test('several bad values are all named in one error', async t => {
  const error = configError(t, {
    PORT: 'abc',
    LOG_LEVEL: 'x',
    ACCESS_TOKEN_ALG: 'RS256',
    REFRESH_TOKEN_SECRET: 'short',
    ACCESS_TOKEN_PRIVATE_KEY: rsaPem,
    REFRESH_TOKEN_TTL: '3600',
    REFRESH_IDLE_TTL: '7200'
  })
  t.same(named(error).sort(), ['ACCESS_TOKEN_ALG', 'ACCESS_TOKEN_PRIVATE_KEY', 'LOG_LEVEL', 'PORT', 'REFRESH_IDLE_TTL', 'REFRESH_TOKEN_SECRET'])
  t.equal(new Set(named(error)).size, named(error).length, 'each variable named once')
  for (const name of named(error)) t.ok(error?.message.includes(name), `the message names ${name}`)
})

t.test('the server exits with code 1 and names PORT when PORT is bad', async t => {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: 'abc' }
  // The child must fail on PORT alone, whatever this shell exports.
  for (const key of ['NODE_OPTIONS', 'DATABASE_URL', 'REDIS_URL']) delete env[key]
  const result = await new Promise<{ code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }>(resolve => {
    execFile(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env, timeout: 60_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const failure = err as (Error & { code?: number | string, signal?: NodeJS.Signals }) | null
      resolve({ code: typeof failure?.code === 'number' ? failure.code : failure ? null : 0, signal: failure?.signal ?? null, stdout, stderr })
    })
  })
  t.equal(result.signal, null, 'exited by itself, not killed by the timeout')
  t.equal(result.code, 1, 'exit code 1')
  t.match(result.stderr + result.stdout, /PORT/, 'the message names PORT')
  t.notMatch(result.stderr, /at .+\(.+:\d+:\d+\)/, 'no stack trace')
})

t.test('TRUST_PROXY: what proxy-addr takes, else a message that names it (operations review)', async t => {
  for (const value of ['', 'true', '2', '10.0.0.1', '10.0.0.0/8, 192.168.1.1', 'loopback,uniquelocal', '::1', 'fd00::/8']) {
    t.doesNotThrow(() => loadConfig({ TRUST_PROXY: value }), JSON.stringify(value))
  }
  for (const value of ['TRUE', 'yes', '10.0.0.0/33', 'proxy.example', '10.0.0.1/8/1', '10.0.0.1,']) {
    t.match(configError(t, { TRUST_PROXY: value })?.message, 'TRUST_PROXY: expected empty, true, a hop count', JSON.stringify(value))
  }
})

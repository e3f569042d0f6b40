// The configuration of the OAuth endpoints: PUBLIC_URL, INTROSPECTION_CLIENTS (and its parser),
// INTROSPECTION_RATE_LIMIT_MAX; as variables, as the plugin's options, and from the server's config.
import t from 'tap'
import { loadConfig, parseIntrospectionClients } from '../src/config.js'
import { OptionsError, configFromOptions } from '../src/options.js'
import { tollgateOptions } from '../src/server.js'
import { configError, named } from './config-support.js'

const SECRET = 's'.repeat(32)
const secret = (label: string) => `${label}-${'x'.repeat(32)}`

t.test('defaults: no PUBLIC_URL, no introspection clients, 6000 introspections per client and window', async t => {
  const config = loadConfig({})
  t.notOk('PUBLIC_URL' in config, 'PUBLIC_URL unset')
  t.notOk('INTROSPECTION_CLIENTS' in config, 'INTROSPECTION_CLIENTS unset')
  t.equal(config.INTROSPECTION_RATE_LIMIT_MAX, 6000)
  const empty = loadConfig({ PUBLIC_URL: '', INTROSPECTION_CLIENTS: '', INTROSPECTION_RATE_LIMIT_MAX: '' })
  t.notOk('PUBLIC_URL' in empty, 'an empty PUBLIC_URL means unset')
  t.notOk('INTROSPECTION_CLIENTS' in empty, 'an empty INTROSPECTION_CLIENTS means unset')
  t.equal(empty.INTROSPECTION_RATE_LIMIT_MAX, 6000, 'an empty INTROSPECTION_RATE_LIMIT_MAX means the default')
})

t.test('PUBLIC_URL: an http(s) base URL without a trailing slash, query or fragment', async t => {
  for (const value of [
    'https://id.example.com',
    'http://localhost:3000',
    'http://127.0.0.1:8080',
    'https://example.com/auth',
    'https://example.com/a/b-c_d.e',
    'https://[::1]:8443'
  ]) {
    t.equal(loadConfig({ PUBLIC_URL: value }).PUBLIC_URL, value, `accepted: ${value}`)
  }
  for (const value of [
    'https://id.example.com/',
    'https://example.com/auth/',
    'id.example.com',
    '//id.example.com',
    'ftp://id.example.com',
    'HTTPS//id.example.com',
    'https://',
    'https://id.example.com?x=1',
    'https://id.example.com/auth?x=1',
    'https://id.example.com#top',
    'https://id example.com',
    'https://id.example.com/a b',
    ' https://id.example.com',
    'https://id.example.com\n'
  ]) {
    const error = configError(t, { PUBLIC_URL: value })
    t.strictSame(named(error), ['PUBLIC_URL'], `rejected: ${JSON.stringify(value)}`)
  }
})

t.test('INTROSPECTION_CLIENTS: comma-separated id:secret pairs', async t => {
  const accepted: Array<[string, string, Array<[string, string]>]> = [
    ['one client', `rs:${SECRET}`, [['rs', SECRET]]],
    ['two clients', `a:${secret('a')},b:${secret('b')}`, [['a', secret('a')], ['b', secret('b')]]],
    ['ids of letters, digits and . _ ~ -', `Rs.1_a~b-C:${SECRET}`, [['Rs.1_a~b-C', SECRET]]],
    ['an id of 64 characters', `${'i'.repeat(64)}:${SECRET}`, [['i'.repeat(64), SECRET]]],
    ['a secret of exactly 32 characters', `rs:${'k'.repeat(32)}`, [['rs', 'k'.repeat(32)]]],
    ['a secret with : % + space / = and non-ASCII', `rs:p:ss%20w+rd/=é ${'x'.repeat(20)}:`, [['rs', `p:ss%20w+rd/=é ${'x'.repeat(20)}:`]]],
    ['two clients with the same secret', `a:${SECRET},b:${SECRET}`, [['a', SECRET], ['b', SECRET]]],
    ['ids that differ in case only', `rs:${SECRET},RS:${SECRET}`, [['rs', SECRET], ['RS', SECRET]]]
  ]
  for (const [name, value, clients] of accepted) {
    t.equal(loadConfig({ INTROSPECTION_CLIENTS: value }).INTROSPECTION_CLIENTS, value, `loadConfig keeps the value: ${name}`)
    t.strictSame(parseIntrospectionClients(value), new Map(clients), `parsed: ${name}`)
  }

  const rejected: Array<[string, string]> = [
    ['a secret of 31 characters', `rs:${'k'.repeat(31)}`],
    ['no colon', `rs${SECRET}`],
    ['an empty id', `:${SECRET}`],
    ['an empty secret', 'rs:'],
    ['an id with a space', `r s:${SECRET}`],
    ['an id with a slash', `r/s:${SECRET}`],
    ['an id with @', `rs@example:${SECRET}`],
    ['an id with %', `r%41s:${SECRET}`],
    ['an id with +', `r+s:${SECRET}`],
    ['a non-ASCII id', `ré:${SECRET}`],
    ['an id of 65 characters', `${'i'.repeat(65)}:${SECRET}`],
    ['a duplicate id', `rs:${secret('one')},rs:${secret('two')}`],
    ['a duplicate id with the same secret', `rs:${SECRET},rs:${SECRET}`],
    ['a trailing comma', `rs:${SECRET},`],
    ['a leading comma', `,rs:${SECRET}`],
    ['two commas', `a:${secret('a')},,b:${secret('b')}`],
    ['a space after the comma', `a:${secret('a')}, b:${secret('b')}`],
    ['a secret cut short by a comma', `rs:${'k'.repeat(20)},${'k'.repeat(20)}`],
    ['one good pair and one short secret', `a:${secret('a')},b:short`]
  ]
  for (const [name, value] of rejected) {
    t.equal(parseIntrospectionClients(value), null, `parser refuses: ${name}`)
    const error = configError(t, { INTROSPECTION_CLIENTS: value })
    t.strictSame(named(error), ['INTROSPECTION_CLIENTS'], `ConfigError names INTROSPECTION_CLIENTS: ${name}`)
    // The error is logged at startup: it must never show a secret, nor the value at all.
    t.notOk(error?.message.includes(value), `the message does not repeat the value: ${name}`)
    t.notOk(error?.message.includes(SECRET), `the message shows no secret: ${name}`)
  }
})

t.test('INTROSPECTION_RATE_LIMIT_MAX: an integer from 1 to 1000000', async t => {
  for (const [value, expected] of [['1', 1], ['6000', 6000], ['1000000', 1_000_000], [250, 250]] as const) {
    t.equal(loadConfig({ INTROSPECTION_RATE_LIMIT_MAX: value }).INTROSPECTION_RATE_LIMIT_MAX, expected, `accepted: ${value}`)
  }
  // As the environment gives them: strings (and one number).
  for (const value of ['0', '1000001', '-1', '1.5', '1e3', 'abc', ' 10', '0x10', 0]) {
    const error = configError(t, { INTROSPECTION_RATE_LIMIT_MAX: value })
    t.strictSame(named(error), ['INTROSPECTION_RATE_LIMIT_MAX'], `rejected: ${JSON.stringify(value)}`)
  }
})

t.test('several bad values: each is named once', async t => {
  const error = configError(t, { PUBLIC_URL: 'https://x.example/', INTROSPECTION_CLIENTS: 'rs:short', INTROSPECTION_RATE_LIMIT_MAX: '0' })
  t.strictSame(named(error).sort(), ['INTROSPECTION_CLIENTS', 'INTROSPECTION_RATE_LIMIT_MAX', 'PUBLIC_URL'])
})

t.test('the plugin options publicUrl, introspectionClients and introspectionRateLimitMax', async t => {
  const config = configFromOptions({ publicUrl: 'https://id.example.com', introspectionClients: `rs:${SECRET}`, introspectionRateLimitMax: 42 })
  t.equal(config.PUBLIC_URL, 'https://id.example.com')
  t.equal(config.INTROSPECTION_CLIENTS, `rs:${SECRET}`)
  t.equal(config.INTROSPECTION_RATE_LIMIT_MAX, 42)

  const cases: Array<[string, Parameters<typeof configFromOptions>[0]]> = [
    ['publicUrl', { publicUrl: 'https://id.example.com/' }],
    ['introspectionClients', { introspectionClients: 'rs:short' }],
    ['introspectionRateLimitMax', { introspectionRateLimitMax: 0 }],
    ['introspectionRateLimitMax', { introspectionRateLimitMax: 1.5 }]
  ]
  for (const [option, options] of cases) {
    let error: OptionsError | undefined
    try {
      configFromOptions(options)
    } catch (err) {
      t.type(err, OptionsError, `${option}: an OptionsError`)
      error = err as OptionsError
    }
    t.strictSame(named(error), [option], `the error names ${option}: ${JSON.stringify(options)}`)
    t.notOk(error?.message.includes(SECRET), `${option}: no secret in the message`)
  }
})

t.test('the server passes the variables on to the plugin', async t => {
  const config = loadConfig({ PUBLIC_URL: 'https://id.example.com', INTROSPECTION_CLIENTS: `rs:${SECRET}`, INTROSPECTION_RATE_LIMIT_MAX: '7' })
  t.has(tollgateOptions(config), { publicUrl: 'https://id.example.com', introspectionClients: `rs:${SECRET}`, introspectionRateLimitMax: 7 })
  const defaults = tollgateOptions(loadConfig({}))
  t.equal(defaults.publicUrl, undefined)
  t.equal(defaults.introspectionClients, undefined)
  t.equal(defaults.introspectionRateLimitMax, 6000)
})

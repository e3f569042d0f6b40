// The CSRF tokens of cookie mode (src/refresh-cookie.ts): bound to one session by an HMAC whose key
// comes from the refresh-token secret, so every instance with that secret accepts them.
import { randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { createCsrfTokens, sameToken } from '../../src/refresh-cookie.js'

t.test('a token is valid for its session only', async t => {
  const secret = randomBytes(32).toString('base64url')
  const csrf = createCsrfTokens(secret)
  const sid = randomUUID()
  const token = csrf.issue(sid)
  t.match(token, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/, '128 random bits and an HMAC-SHA256, base64url')
  t.ok(csrf.isValid(token, sid), 'valid for its session')
  t.ok(createCsrfTokens(secret).isValid(token, sid), 'and on another instance with the same secret')
  t.not(csrf.issue(sid), token, 'each token is new')
  t.notOk(csrf.isValid(token, randomUUID()), 'not for another session')
  t.notOk(createCsrfTokens(randomBytes(32).toString('base64url')).isValid(token, sid), 'not under another secret')

  const [nonce, mac] = token.split('.') as [string, string]
  for (const [step, forged] of [
    ['another random part', `${'A'.repeat(22)}.${mac}`],
    ['a changed HMAC', `${nonce}.${mac.startsWith('A') ? 'B' : 'A'}${mac.slice(1)}`],
    ['a cut HMAC', `${nonce}.${mac.slice(0, 20)}`],
    ['no HMAC', `${nonce}.`],
    ['no random part', `.${mac}`],
    ['one more part', `${token}.x`],
    ['empty', ''],
    ['no dot', `${nonce}${mac}`]
  ] as const) {
    t.notOk(csrf.isValid(forged, sid), step)
  }
})

t.test('sameToken compares whole strings', async t => {
  t.ok(sameToken('abc.def', 'abc.def'))
  t.notOk(sameToken('abc.def', 'abc.deg'))
  t.notOk(sameToken('abc.def', 'abc.de'))
  t.notOk(sameToken('', 'a'))
})

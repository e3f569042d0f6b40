import type { AddressInfo } from 'node:net'
import { simpleParser } from 'mailparser'
import { SMTPServer } from 'smtp-server'
import type { DestinationStream } from 'pino'
import type { TestContext } from '../helper.js'

// A real SMTP server in the test process (smtp-server), and the mails it received, parsed
// (mailparser): the app's mailer talks SMTP to it exactly as to a production relay.

export interface ReceivedMail {
  from: string
  to: string
  subject: string
  text: string
}

export interface TestSmtpServer {
  /** smtp://user:pass@127.0.0.1:port (with credentials when the server requires them). */
  url: string
  port: number
  received: ReceivedMail[]
  /** The next mail to `address` not yet taken (waits for it, up to 20 s). */
  nextMailTo (address: string): Promise<ReceivedMail>
  /** Mails to `address` received so far. */
  mailsTo (address: string): ReceivedMail[]
  /** Logins the server accepted or refused. */
  logins: Array<{ username: string, accepted: boolean }>
}

export interface SmtpServerOptions {
  /** Require AUTH with these credentials (over plain text: the loopback exception of the mailer). */
  credentials?: { user: string, pass: string }
  /** Answer this many recipients with a temporary failure (451) before accepting any; the reply names the address, as Postfix's does. */
  failFirst?: number
}

export async function startSmtpServer (t: TestContext, options: SmtpServerOptions = {}): Promise<TestSmtpServer> {
  const received: ReceivedMail[] = []
  const taken = new Set<ReceivedMail>()
  const logins: TestSmtpServer['logins'] = []
  let waiters: Array<() => void> = []
  let failuresLeft = options.failFirst ?? 0

  const server = new SMTPServer({
    // No TLS on loopback: nothing to upgrade to.
    disabledCommands: ['STARTTLS'],
    authOptional: !options.credentials,
    allowInsecureAuth: true,
    logger: false,
    onAuth (auth, _session, callback) {
      const accepted = auth.username === options.credentials?.user && auth.password === options.credentials?.pass
      logins.push({ username: auth.username ?? '', accepted })
      if (accepted) callback(null, { user: auth.username })
      else callback(new Error('Invalid username or password'))
    },
    onRcptTo (address, _session, callback) {
      if (failuresLeft > 0) {
        failuresLeft--
        callback(Object.assign(new Error(`4.2.1 <${address.address}>: Recipient address rejected: mailbox busy, try again later`), { responseCode: 451 }))
        return
      }
      callback()
    },
    onData (stream, _session, callback) {
      simpleParser(stream).then(parsed => {
        const to = Array.isArray(parsed.to) ? parsed.to.map(a => a.text).join(', ') : parsed.to?.text ?? ''
        received.push({ from: parsed.from?.text ?? '', to, subject: parsed.subject ?? '', text: parsed.text ?? '' })
        const waiting = waiters
        waiters = []
        for (const wake of waiting) wake()
        callback()
      }, callback)
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.server.address() as AddressInfo).port
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))

  const credentials = options.credentials ? `${encodeURIComponent(options.credentials.user)}:${encodeURIComponent(options.credentials.pass)}@` : ''
  const mailsTo = (address: string) => received.filter(mail => mail.to === address)
  return {
    url: `smtp://${credentials}127.0.0.1:${port}`,
    port,
    received,
    logins,
    mailsTo,
    async nextMailTo (address) {
      const deadline = Date.now() + 20_000
      for (;;) {
        const mail = mailsTo(address).find(m => !taken.has(m))
        if (mail) {
          taken.add(mail)
          return mail
        }
        if (Date.now() > deadline) throw new Error(`no mail to ${address} within 20 s`)
        await new Promise<void>(resolve => {
          const timer = setTimeout(resolve, 1_000)
          waiters.push(() => { clearTimeout(timer); resolve() })
        })
      }
    }
  }
}

/** The token of the first link to `<page>?token=` in a mail's text. */
export function linkToken (text: string, page: 'verify-email' | 'reset-password'): string {
  const match = new RegExp(`/${page}\\?token=([A-Za-z0-9_-]+)`).exec(text)
  if (!match) throw new Error(`no ${page} link in: ${text}`)
  return match[1] as string
}

/** The first link in a mail's text. */
export function firstLink (text: string): string {
  const match = /https?:\/\/\S+/.exec(text)
  if (!match) throw new Error(`no link in: ${text}`)
  return match[0]
}

export interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

/** The server's log, as JSON lines (LOG_LEVEL must let them through). */
export function captureLog (): { stream: DestinationStream, lines: () => LogLine[], raw: () => string, waitFor: (match: (line: LogLine) => boolean) => Promise<LogLine> } {
  const chunks: string[] = []
  let waiters: Array<() => void> = []
  const lines = () => chunks.join('').split('\n').filter(Boolean).map(line => JSON.parse(line) as LogLine)
  return {
    stream: {
      write (chunk: string) {
        chunks.push(chunk)
        const waiting = waiters
        waiters = []
        for (const wake of waiting) wake()
      }
    },
    lines,
    raw: () => chunks.join(''),
    async waitFor (match) {
      const deadline = Date.now() + 30_000
      for (;;) {
        const line = lines().find(match)
        if (line) return line
        if (Date.now() > deadline) throw new Error('the expected log line did not come within 30 s')
        await new Promise<void>(resolve => {
          const timer = setTimeout(resolve, 1_000)
          waiters.push(() => { clearTimeout(timer); resolve() })
        })
      }
    }
  }
}

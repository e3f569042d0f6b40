import nodemailer from 'nodemailer'
import type { SmtpSettings } from './smtp-url.js'

/** One plain-text mail. */
export interface Mail {
  to: string
  subject: string
  text: string
}

/** What the log may say about a mail: never its address or its text (which holds a token). */
export interface MailContext {
  /** Which mail: `verify_email`, `reset_password`, `password_changed`. */
  kind: string
  userId: string
}

/** A pino-like logger. */
export interface MailLog {
  info (details: object, message: string): void
  warn (details: object, message: string): void
  error (details: object, message: string): void
}

export interface MailerOptions {
  /** The SMTP server; without one, nothing is sent (see `devOutbox`). */
  smtp?: SmtpSettings
  /**
   * Without `smtp`: write each mail, link and token included, to the log at info (the development
   * outbox). Only for the embedded default; otherwise a mail without SMTP is dropped, and each drop
   * is logged as a warning without the mail's address or text.
   */
  devOutbox?: boolean
  from: string
  log: MailLog
  /** The waits before each retry of a failed delivery, ms: as many retries as entries. */
  retryDelaysMs?: number[]
}

/** A few retries, further and further apart: a server restart or a short outage loses no mail. */
export const RETRY_DELAYS_MS = [5_000, 30_000, 120_000]
// Deliveries at once, and waiting: the queue is in memory, so it is bounded.
const CONCURRENT_DELIVERIES = 2
const MAX_QUEUED = 1_000

interface Delivery {
  mail: Mail
  context: MailContext
  /** 1 for the first try. */
  attempt: number
}

// Anything shaped like an address, in whatever a server or library put into a message.
const ADDRESS = /[^\s<>"'@]+@[^\s<>"'@]+/g

/**
 * The parts of a nodemailer error worth logging: never the whole object, which may carry the
 * envelope, nor the server's reply, which often repeats the recipient ("550 5.1.1 <ada@…>: …").
 */
function describeError (err: unknown) {
  const e = err as { message?: unknown, code?: unknown, responseCode?: unknown, command?: unknown, response?: unknown }
  let message = String(e?.message ?? err)
  if (typeof e?.response === 'string' && e.response !== '') message = message.replace(e.response, '(the server\'s reply)')
  return { message: message.replace(ADDRESS, '(an address)'), code: e?.code, responseCode: e?.responseCode, command: e?.command }
}

/**
 * Sends mail without ever holding up a request: `send` queues and returns; deliveries run in the
 * background, a failed one is retried after each of `retryDelaysMs`, and every failure is logged
 * (without the mail's text, which may hold a token). Without SMTP, a mail is either written to the
 * log at info, labelled as the development outbox (`devOutbox`: the one place a token may appear in
 * a log), or dropped with a warning.
 */
export function createMailer ({ smtp, devOutbox = false, from, log, retryDelaysMs = RETRY_DELAYS_MS }: MailerOptions) {
  const transport = smtp && nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    requireTLS: smtp.requireTls,
    ...(smtp.auth && { auth: smtp.auth }),
    // Bounded waits, so a hung server delays neither retries nor shutdown for long.
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 15_000
  })

  const queue: Delivery[] = []
  const retries = new Map<NodeJS.Timeout, Delivery>()
  let running = 0
  let closed = false
  let idleWaiters: Array<() => void> = []

  function notifyIfIdle () {
    if (queue.length > 0 || running > 0 || retries.size > 0) return
    const waiters = idleWaiters
    idleWaiters = []
    for (const resolve of waiters) resolve()
  }

  function enqueue (delivery: Delivery) {
    if (queue.length >= MAX_QUEUED) {
      log.error({ mail: delivery.context }, 'mail not sent: the mail queue is full')
      return
    }
    queue.push(delivery)
    pump()
  }

  function pump () {
    while (running < CONCURRENT_DELIVERIES && queue.length > 0) {
      const delivery = queue.shift() as Delivery
      running++
      deliver(delivery).finally(() => {
        running--
        pump()
        notifyIfIdle()
      })
    }
  }

  async function deliver (delivery: Delivery): Promise<void> {
    const { mail, context, attempt } = delivery
    if (!transport) {
      if (devOutbox) log.info({ devOutbox: { to: mail.to, subject: mail.subject, text: mail.text } }, 'development outbox (SMTP_URL is unset): this mail was not sent')
      else log.warn({ mail: context }, 'mail not sent: mail is off (SMTP_URL is unset)')
      return
    }
    try {
      await transport.sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text })
      log.info({ mail: context, attempt }, 'mail sent')
    } catch (err) {
      const retryInMs = retryDelaysMs[attempt - 1]
      if (retryInMs === undefined || closed) {
        log.error({ mail: context, attempt, err: describeError(err) }, 'mail not sent: giving up')
        return
      }
      log.warn({ mail: context, attempt, retryInMs, err: describeError(err) }, 'mail not sent: will retry')
      const timer = setTimeout(() => {
        retries.delete(timer)
        enqueue({ ...delivery, attempt: attempt + 1 })
      }, retryInMs)
      // A pending retry does not keep the process alive.
      timer.unref()
      retries.set(timer, delivery)
    }
  }

  return {
    /** Queues a mail and returns at once; delivery and its failures are the mailer's business. */
    send (mail: Mail, context: MailContext): void {
      if (closed) {
        log.error({ mail: context }, 'mail not sent: the mailer is closed')
        return
      }
      enqueue({ mail, context, attempt: 1 })
    },

    /** Resolves once nothing is queued, being delivered or waiting for a retry. */
    settled (): Promise<void> {
      return new Promise(resolve => {
        idleWaiters.push(resolve)
        notifyIfIdle()
      })
    },

    /** Lets the deliveries under way finish, drops the retries still waiting (logged), closes the transport. */
    async close (): Promise<void> {
      closed = true
      for (const [timer, delivery] of retries) {
        clearTimeout(timer)
        log.error({ mail: delivery.context, attempt: delivery.attempt }, 'mail not sent: shutting down before its retry')
      }
      retries.clear()
      for (const delivery of queue.splice(0)) log.error({ mail: delivery.context }, 'mail not sent: shutting down')
      await new Promise<void>(resolve => {
        idleWaiters.push(resolve)
        notifyIfIdle()
      })
      transport?.close()
    }
  }
}

export type Mailer = ReturnType<typeof createMailer>

import { isIP } from 'node:net'

/** Where and how to reach the SMTP server, read from SMTP_URL. */
export interface SmtpSettings {
  host: string
  port: number
  /** smtps://: TLS from the first byte. smtp://: STARTTLS when the server offers it (or always, see requireTls). */
  secure: boolean
  /**
   * STARTTLS or no mail: set for every smtp:// host that is not loopback, so that neither the links
   * (their tokens) nor credentials cross a network in clear text, even when a server without STARTTLS
   * or a man in the middle stripping it answers. Off only by an explicit `allowPlaintext`.
   */
  requireTls: boolean
  auth?: { user: string, pass: string }
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1'])

/** Whether a host name is this machine, where clear text crosses no network. */
export function isLoopback (host: string): boolean {
  return LOOPBACK_NAMES.has(host.toLowerCase()) || (isIP(host) === 4 && host.startsWith('127.'))
}

/**
 * `smtp://[user:password@]host[:port]` or `smtps://…` (user and password percent-encoded), as its
 * parts; null when it is not such a URL. Ports default as nodemailer's do: 587, and 465 for smtps.
 * `allowPlaintext` (SMTP_REQUIRE_TLS=false) lets a credential-less smtp:// relay on another host take
 * mail without STARTTLS; with credentials TLS stays required (the configuration refuses the pair).
 * Never put the value in a message: it holds a password.
 */
export function parseSmtpUrl (value: string, { allowPlaintext = false }: { allowPlaintext?: boolean } = {}): SmtpSettings | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return null
  }
  if ((url.protocol !== 'smtp:' && url.protocol !== 'smtps:') || !url.hostname || url.search || url.hash || (url.pathname !== '' && url.pathname !== '/')) return null
  const secure = url.protocol === 'smtps:'
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  let auth: SmtpSettings['auth']
  try {
    if (url.username || url.password) auth = { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) }
  } catch {
    return null
  }
  if (auth && (!auth.user || !auth.pass)) return null
  return {
    host,
    port: url.port ? Number(url.port) : secure ? 465 : 587,
    secure,
    requireTls: !secure && !isLoopback(host) && (auth !== undefined || !allowPlaintext),
    ...(auth && { auth })
  }
}

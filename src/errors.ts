/**
 * Every error a client can see is made here, once, with a stable code and status. Plain classes
 * rather than @fastify/error, so the domain in src/ imports nothing of Fastify; any error handler
 * (Tollgate's or a host's) reads `statusCode`, `code` and `message` from them.
 */
export class TollgateError extends Error {
  constructor (readonly code: string, message: string, readonly statusCode: number) {
    super(message)
    this.name = new.target.name
  }
}

export class InvalidCredentialsError extends TollgateError {
  constructor () { super('INVALID_CREDENTIALS', 'Invalid email or password', 401) }
}
export class InvalidTokenError extends TollgateError {
  constructor () { super('INVALID_TOKEN', 'The access token is invalid, expired or revoked', 401) }
}
/** Same code, but RFC 6750 §3.1: a request with no credentials gets no error attribute in WWW-Authenticate. */
export class MissingTokenError extends TollgateError {
  constructor () { super('INVALID_TOKEN', 'An access token is required', 401) }
}
export class WrongPasswordError extends TollgateError {
  constructor () { super('INVALID_CREDENTIALS', 'The password is incorrect', 401) }
}
export class EmailTakenError extends TollgateError {
  constructor () { super('EMAIL_TAKEN', 'An account with this email already exists', 409) }
}
export class SessionNotFoundError extends TollgateError {
  constructor () { super('SESSION_NOT_FOUND', 'Session not found', 404) }
}
export class ServiceBusyError extends TollgateError {
  constructor () { super('SERVICE_BUSY', 'The server is busy; retry shortly', 503) }
}
export class RateLimitedError extends TollgateError {
  /** `retryAfterSeconds`: for the error handler's Retry-After, when no hook has set it. */
  constructor (readonly retryAfterSeconds?: number) { super('RATE_LIMITED', 'Too many requests; retry after the time in Retry-After', 429) }
}

/**
 * REQUIRE_VERIFIED_EMAIL: told only to whoever gave the right password. A new verification link needs
 * a login, which this refuses, so the way out it names is the password reset.
 */
export class EmailNotVerifiedError extends TollgateError {
  constructor () { super('EMAIL_NOT_VERIFIED', 'Verify your email address first: open the link mailed to it. If that link has expired, ask for a password reset (POST /auth/password/forgot): its link verifies the address too', 403) }
}

// A mailed link's token (email verification, password reset) that cannot be used, and why: only its
// holder learns it, and each asks the client for something else (a new link, or the newest one).
export class UnknownLinkTokenError extends TollgateError {
  constructor () { super('LINK_TOKEN_UNKNOWN', 'This link is not valid; ask for a new one', 400) }
}
export class ExpiredLinkTokenError extends TollgateError {
  constructor () { super('LINK_TOKEN_EXPIRED', 'This link has expired; ask for a new one', 400) }
}
export class UsedLinkTokenError extends TollgateError {
  constructor () { super('LINK_TOKEN_USED', 'This link has already been used', 400) }
}
export class SupersededLinkTokenError extends TollgateError {
  constructor () { super('LINK_TOKEN_SUPERSEDED', 'This link has been replaced: a newer one was sent, or the password was changed since; use the newest link or ask for a new one', 400) }
}

/**
 * REFRESH_COOKIE: a request that presents the refresh-token cookie without an X-CSRF-Token header
 * equal to the CSRF cookie and bound to the cookie's session (the double-submit check).
 */
export class CsrfCheckError extends TollgateError {
  constructor () { super('CSRF_CHECK_FAILED', 'A request that uses the refresh-token cookie needs the X-CSRF-Token header, equal to the CSRF cookie', 403) }
}

/** RFC 7662 §2.1: the introspection endpoint's client authentication failed. */

/**
 * The WWW-Authenticate challenge of a 401: Basic for client authentication (RFC 7617), else
 * Bearer (RFC 6750 §3), with `error` only when a token was presented.
 */
export function challengeOf (error: unknown): string {
  if (error instanceof InvalidClientError) return 'Basic realm="tollgate", charset="UTF-8"'
  return error instanceof InvalidTokenError
    ? 'Bearer realm="tollgate", error="invalid_token"'
    : 'Bearer realm="tollgate"'
}

/** The RFC 6749 §5.2 error codes Tollgate answers with. */
export const OAUTH_ERROR_CODES = ['invalid_client', 'invalid_grant', 'invalid_request', 'unsupported_grant_type'] as const
export type OAuthErrorCode = typeof OAUTH_ERROR_CODES[number]

/** RFC 6749 §5.2 error of the token endpoint; the refresh route renders it as `{error, error_description}`. */
export class OAuthError extends Error {
  constructor (readonly errorCode: OAuthErrorCode, readonly description: string, readonly statusCode: 400 | 401 = 400) {
    super(description)
    this.name = 'OAuthError'
  }
}

/** Introspection's client authentication failed: RFC 6749 §5.2's 401, as RFC 7662 §2.3 asks. */
export class InvalidClientError extends OAuthError {
  constructor () { super('invalid_client', 'Client authentication failed', 401) }
}

/** The one answer for any unusable refresh token: which check failed is nobody's business. */
export const invalidGrant = () => new OAuthError('invalid_grant', 'The refresh token is invalid, expired or revoked')

/** A dependency (PostgreSQL, Redis, a server's introspection) failed or timed out: the request must fail closed with 503. */
export class DependencyError extends Error {
  // So that any error handler, also an embedding app's own, answers 503 and never 500 or 200.
  readonly statusCode = 503
  readonly code = 'SERVICE_UNAVAILABLE'
  constructor (readonly dependency: 'postgres' | 'redis' | 'introspection', cause: unknown) {
    // What an embedding app's own error handler would send: no dependency name for the client.
    super('A backing service is unavailable; retry shortly', { cause })
    this.name = 'DependencyError'
  }
}

/** What a client is told when its JSON body does not parse. */
export const MALFORMED_JSON_MESSAGE = 'The request body is not valid JSON'

/** Valid JSON that names `__proto__`, or `constructor` with `prototype`: refused against prototype poisoning. */
export class ForbiddenJsonKeyError extends SyntaxError {
  readonly statusCode = 400
  constructor () { super('The request body has a member named __proto__, or constructor with a member named prototype: such bodies are refused') }
}

/** The message for a body the JSON parser refused (see isMalformedJson). */
export function malformedJsonMessage (error: Error): string {
  return error instanceof ForbiddenJsonKeyError ? error.message : MALFORMED_JSON_MESSAGE
}

/** A body sent as JSON that does not parse (or is empty): Fastify's parser errors, by their marks. */
export function isMalformedJson (error: { code?: string, statusCode?: number }): boolean {
  return error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    (error instanceof SyntaxError && error.statusCode === 400)
}

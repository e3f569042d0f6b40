import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { OAUTH_ERROR_CODES, type OAuthErrorCode } from './errors.js'

// Shared schemas carry an $id so the OpenAPI document lists them under components.
export const EmailSchema = Type.String({
  $id: 'Email',
  format: 'email',
  minLength: 3,
  maxLength: 254,
  description: 'Compared case-insensitively and stored lower-case; surrounding spaces are refused (trim it before sending)'
})

export const PasswordSchema = Type.String({ $id: 'Password', minLength: 8, maxLength: 128 })

/** The body of a 202: the work goes on after the answer. */
export const AcceptedSchema = Type.Object({ message: Type.String({ description: 'For people; may change between versions' }) }, { $id: 'Accepted', additionalProperties: false })

/** The token of a mailed link (email verification, password reset), copied from the link's `token` parameter. */
export const LinkTokenSchema = Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_-]+$', description: 'The `token` query parameter of the mailed link, as it is (base64url)' })

export const UserSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  email_verified: Type.Boolean({ description: 'Whether the user has opened a link mailed to this address (verification or password reset)' }),
  created_at: Type.String({ format: 'date-time' })
}, { $id: 'User', additionalProperties: false })

export const TokenResponseSchema = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
  refresh_token: Type.String(),
  refresh_expires_in: Type.Integer({ description: 'Seconds until the refresh token expires' })
}, { $id: 'TokenResponse', additionalProperties: false, description: 'RFC 6749 §5.1 token response' })
export type TokenResponse = Static<typeof TokenResponseSchema>

/** GET /auth/sessions: one entry. */
export const SessionSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.String({ format: 'date-time', description: 'Last login or refresh' }),
  expires_at: Type.String({ format: 'date-time', description: 'Absolute end of the session' }),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean({ description: 'The session of the token that asked' })
}, { $id: 'Session', additionalProperties: false, description: 'A live session: one device or client that logged in' })

/** GET /.well-known/jwks.json. */
export const JwkSchema = Type.Object({
  kty: Type.String(),
  crv: Type.String(),
  x: Type.String(),
  kid: Type.String(),
  alg: Type.String(),
  use: Type.String()
}, { $id: 'Jwk', additionalProperties: false, description: 'A public key (RFC 7517 §4)' })

export const JwkSetSchema = Type.Object({ keys: Type.Array(Type.Ref(JwkSchema)) }, { $id: 'JwkSet', additionalProperties: false, description: 'A JWK Set (RFC 7517 §5)' })

/** GET /.well-known/oauth-authorization-server. */
export const AuthorizationServerMetadataSchema = Type.Object({
  issuer: Type.String({ description: 'The exact `iss` of every token' }),
  jwks_uri: Type.String({ format: 'uri' }),
  token_endpoint: Type.String({ format: 'uri', description: 'The refresh grant' }),
  token_endpoint_auth_methods_supported: Type.Array(Type.String()),
  grant_types_supported: Type.Array(Type.String()),
  response_types_supported: Type.Array(Type.String(), { description: 'Empty: Tollgate has no authorization endpoint' }),
  revocation_endpoint: Type.String({ format: 'uri' }),
  revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
  introspection_endpoint: Type.Optional(Type.String({ format: 'uri' })),
  introspection_endpoint_auth_methods_supported: Type.Optional(Type.Array(Type.String()))
}, { $id: 'AuthorizationServerMetadata', additionalProperties: false, description: 'RFC 8414 authorization server metadata' })

/**
 * The token response of cookie mode (REFRESH_COOKIE): the refresh token travels in a cookie, not
 * the body. No $id: it is in the document only when the mode is on.
 */
export const CookieTokenResponseSchema = Type.Object({
  access_token: TokenResponseSchema.properties.access_token,
  token_type: TokenResponseSchema.properties.token_type,
  expires_in: TokenResponseSchema.properties.expires_in,
  refresh_expires_in: Type.Integer({ description: 'Seconds until the refresh token (in its cookie) expires' })
}, { additionalProperties: false, description: 'RFC 6749 §5.1 token response; the refresh token is in a cookie (REFRESH_COOKIE)' })

/**
 * Every `code` an Error body carries: the TollgateError codes of src/errors.ts and the ones
 * plugins/errors.ts gives by status. test/plugins/swagger.test.ts checks the list against both.
 */
export const ERROR_CODES = [
  'INVALID_REQUEST',
  'INVALID_CREDENTIALS',
  'INVALID_TOKEN',
  'NOT_FOUND',
  'SESSION_NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'NOT_ACCEPTABLE',
  'EMAIL_TAKEN',
  'CSRF_CHECK_FAILED',
  'EMAIL_NOT_VERIFIED',
  'LINK_TOKEN_UNKNOWN',
  'LINK_TOKEN_EXPIRED',
  'LINK_TOKEN_USED',
  'LINK_TOKEN_SUPERSEDED',
  'PAYLOAD_TOO_LARGE',
  'URI_TOO_LONG',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'INTERNAL_ERROR',
  'SERVICE_UNAVAILABLE',
  'SERVICE_BUSY'
] as const
export type ErrorCode = typeof ERROR_CODES[number]

export const ErrorSchema = Type.Object({
  statusCode: Type.Integer({ description: 'The HTTP status, repeated' }),
  // A plain string enum, not a union of literals: the serializer ignores `enum`, so a code missing
  // here could never turn a response into a serialization error.
  code: Type.Unsafe<ErrorCode>({ type: 'string', enum: [...ERROR_CODES], description: 'Stable and machine-readable: switch on this, not on message' }),
  error: Type.String({ description: 'The HTTP status text' }),
  message: Type.String({ description: 'For people; may change between versions' })
}, { $id: 'Error' })

export const OAuthErrorSchema = Type.Object({
  // A string enum like Error.code, so generated clients get one enum type.
  error: Type.Unsafe<OAuthErrorCode>({ type: 'string', enum: [...OAUTH_ERROR_CODES] }),
  error_description: Type.String()
}, { $id: 'OAuthError', description: 'RFC 6749 §5.2 error response' })

/** Every shared schema, in the order they must be added to Fastify. */
export const sharedSchemas = [EmailSchema, PasswordSchema, AcceptedSchema, UserSchema, TokenResponseSchema, SessionSchema, JwkSchema, JwkSetSchema, AuthorizationServerMetadataSchema, ErrorSchema, OAuthErrorSchema]

/** OpenAPI response headers by name. */
export type ResponseHeaders = Record<string, TSchema>

/** The mark of a response header that every such response carries: plugins/swagger.ts makes it `required`. */
export const ALWAYS_SENT = 'x-always-sent'
/** A response header that every response it is declared on carries (generated clients need not check). */
export const alwaysSent = <T extends TSchema>(schema: T): T => ({ ...schema, [ALWAYS_SENT]: true })

/** Sent with every 401 (RFC 6750 §3). */
export const WWW_AUTHENTICATE: ResponseHeaders = {
  'WWW-Authenticate': alwaysSent(Type.String({ description: 'The Bearer challenge: `Bearer realm="tollgate"`, plus `error="invalid_token"` when the access token presented was refused (RFC 6750 §3)' }))
}
/** Sent with the 401 of client authentication (RFC 7617). */
export const WWW_AUTHENTICATE_BASIC: ResponseHeaders = {
  'WWW-Authenticate': alwaysSent(Type.String({ description: 'The Basic challenge: `Basic realm="tollgate", charset="UTF-8"` (RFC 7617)' }))
}
/** Sent with every 429 and 503. */
export const RETRY_AFTER: ResponseHeaders = {
  'Retry-After': alwaysSent(Type.Integer({ minimum: 1, description: 'Seconds to wait before retrying' }))
}
/** Sent with token responses and the token endpoint's errors (RFC 6749 §5.1). */
export const NO_STORE_HEADERS: ResponseHeaders = {
  'Cache-Control': alwaysSent(Type.Literal('no-store', { description: 'Never cache tokens' })),
  Pragma: alwaysSent(Type.Literal('no-cache', { description: 'For HTTP/1.0 caches' }))
}

/**
 * A response schema with the description and headers its OpenAPI response shows: @fastify/swagger
 * turns a response schema's `headers` into the response's headers. Neither changes what is sent.
 */
export function documented<T extends TSchema> (schema: T, description: string, headers?: ResponseHeaders): T {
  return { ...schema, description, ...(headers && { headers }) }
}

/** An Error body, described, with the headers sent with it. */
export const errorResponse = (description: string, headers?: ResponseHeaders) => documented(Type.Ref(ErrorSchema), description, headers)

/** The 401 of a route behind `authenticate`. */
export const unauthorized = (description = 'Missing, invalid, expired or revoked access token') => errorResponse(description, WWW_AUTHENTICATE)

/** The 429 of a rate-limited route. */
export const rateLimited = (description = 'Too many requests from this address; retry after Retry-After') => errorResponse(description, RETRY_AFTER)

/** The 503 of a route that needs the database, the token store or a password hash. */
export const unavailable = (description = 'A backing service is unavailable or busy; retry after Retry-After') => errorResponse(description, RETRY_AFTER)

/** The 200 of a grant: a token pair, never cached. */
export const tokenResponse = (description: string) => documented(Type.Ref(TokenResponseSchema), description, NO_STORE_HEADERS)

/** The 200 of a grant in cookie mode: no refresh_token in the body, never cached, and the `headers` that set the cookies. */
export const cookieTokenResponse = (description: string, headers: ResponseHeaders) => documented(CookieTokenResponseSchema, description, { ...NO_STORE_HEADERS, ...headers })

/** The 400 of an OAuth endpoint (RFC 6749 §5.2), never cached like the tokens it guards. */
export const oauthErrorResponse = (description: string) => documented(Type.Ref(OAuthErrorSchema), description, NO_STORE_HEADERS)

/** The 413 and 415 of a route with a JSON body: `response: { ...jsonBodyErrors(), … }`. */
export const jsonBodyErrors = () => ({
  413: errorResponse('The body is larger than 16 KiB'),
  415: errorResponse('Unsupported Content-Type: send application/json')
})

/**
 * The answers of a route that takes no body to one sent anyway, which Fastify still parses:
 * `response: { ...noBodyErrors(), … }`.
 */
export const noBodyErrors = () => ({
  400: errorResponse('This route takes no body: one was sent, and it is not valid JSON'),
  413: errorResponse('This route takes no body: one was sent, larger than 16 KiB'),
  415: errorResponse('This route takes no body: one was sent, and it is not JSON')
})

/** Auth bodies are small; anything larger is a 413 before parsing. */
export const BODY_LIMIT = 16 * 1024

/**
 * How Tollgate's routes validate, under any host: a number where a string is expected is a 400,
 * and an unknown field is refused, never silently dropped.
 */
export const VALIDATION_OPTIONS = { coerceTypes: false, removeAdditional: false, allErrors: false } as const

/** OpenAPI `security` of a route that needs an access token, and of a public one. */
export const BEARER_SECURITY = [{ bearerAuth: [] }]
export const PUBLIC_SECURITY: Array<Record<string, string[]>> = []

import { Type, type Static } from '@sinclair/typebox'

// Shared schemas carry an $id so the OpenAPI document lists them under components.
export const EmailSchema = Type.String({
  $id: 'Email',
  format: 'email',
  minLength: 3,
  maxLength: 254,
  description: 'Compared case-insensitively; stored trimmed and lower-case'
})

export const PasswordSchema = Type.String({ $id: 'Password', minLength: 8, maxLength: 128 })

export const UserSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
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

export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String()
}, { $id: 'Error' })

export const OAuthErrorSchema = Type.Object({
  error: Type.Union([Type.Literal('invalid_grant'), Type.Literal('invalid_request')]),
  error_description: Type.String()
}, { $id: 'OAuthError', description: 'RFC 6749 §5.2 error response' })

/** Every shared schema, in the order they must be added to Fastify. */
export const sharedSchemas = [EmailSchema, PasswordSchema, UserSchema, TokenResponseSchema, ErrorSchema, OAuthErrorSchema]

export const errorResponse = (description: string) => Type.Ref(ErrorSchema, { description })

/** OpenAPI `security` of a route that needs an access token, and of a public one. */
export const BEARER_SECURITY = [{ bearerAuth: [] }]
export const PUBLIC_SECURITY: Array<Record<string, string[]>> = []

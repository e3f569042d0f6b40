import { randomUUID } from 'node:crypto'
import formbody from '@fastify/formbody'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { toUserBody } from '../../src/entities/user.js'
import { InvalidCredentialsError, OAuthError, SessionNotFoundError, WrongPasswordError, invalidGrant } from '../../src/errors.js'
import { BEARER_SECURITY, EmailSchema, OAuthErrorSchema, PasswordSchema, PUBLIC_SECURITY, TokenResponseSchema, UserSchema, errorResponse } from '../../src/schemas.js'
import { handleError } from '../../plugins/errors.js'

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' }

function clientOf (request: FastifyRequest) {
  return { userAgent: request.headers['user-agent']?.slice(0, 256) ?? null, ip: request.ip ?? null }
}

const authRoutes: FastifyPluginAsyncTypebox = async function authRoutes (fastify) {
  const { config, users, tokens, tokenStore, passwords, rateLimits } = fastify

  /** Starts a session and answers with its first token pair. */
  async function startSession (request: FastifyRequest, reply: FastifyReply, user: { id: string, roles: string[] }) {
    const now = Date.now()
    const sid = randomUUID()
    const jti = randomUUID()
    const expiresAt = now + config.REFRESH_TOKEN_TTL * 1000
    await tokenStore.createSession({ userId: user.id, sid, jti, now, expiresAt, ...clientOf(request) })
    reply.headers(NO_STORE)
    return tokens.tokenResponse({ userId: user.id, sid, roles: user.roles, refreshJti: jti, sessionExpiresAt: expiresAt })
  }

  fastify.post('/register', {
    onRequest: [rateLimits.perIp],
    schema: {
      tags: ['auth'],
      summary: 'Create an account',
      security: PUBLIC_SECURITY,
      body: Type.Object({
        email: Type.Ref(EmailSchema),
        password: Type.Ref(PasswordSchema),
        name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 }))
      }, { additionalProperties: false }),
      response: {
        201: Type.Ref(UserSchema),
        400: errorResponse('Invalid body'),
        409: errorResponse('The email is already registered'),
        429: errorResponse('Too many attempts from this address; see Retry-After'),
        503: errorResponse('A backing service is unavailable or busy')
      }
    }
  }, async function register (request, reply) {
    const { email, password, name } = request.body
    const user = await users.create({ email, name: name ?? null, passwordHash: await passwords.hash(password) })
    return reply.code(201).send(toUserBody(user))
  })

  fastify.post('/login', {
    onRequest: [rateLimits.perIp],
    // After body validation: the per-account limit is keyed by the (validated) email.
    preHandler: [rateLimits.perAccount],
    schema: {
      tags: ['auth'],
      summary: 'Exchange email and password for a token pair',
      security: PUBLIC_SECURITY,
      body: Type.Object({
        email: Type.Ref(EmailSchema),
        // Any length up to the maximum: a login must not reveal the password policy.
        password: Type.String({ minLength: 1, maxLength: 128 })
      }, { additionalProperties: false }),
      response: {
        200: Type.Ref(TokenResponseSchema),
        400: errorResponse('Invalid body'),
        401: errorResponse('Wrong email or password (one generic answer for both)'),
        429: errorResponse('Too many attempts from this address or for this account; see Retry-After'),
        503: errorResponse('A backing service is unavailable or busy')
      }
    }
  }, async function login (request, reply) {
    const { email, password } = request.body
    const user = await users.findByEmail(email)
    // An unknown email costs one verify too, so the answer time does not reveal which emails exist.
    const valid = user ? await passwords.verify(user.passwordHash, password) : await passwords.verifyAgainstNothing(password)
    if (!user || !valid) throw new InvalidCredentialsError()
    return startSession(request, reply, user)
  })

  // The token endpoint accepts form bodies (RFC 6749 §6); only this route, so no other route takes
  // cross-site form posts.
  await fastify.register(async function refreshRoute (scope) {
    await scope.register(formbody)
    scope.withTypeProvider<import('@fastify/type-provider-typebox').TypeBoxTypeProvider>().post('/refresh', {
      onRequest: [rateLimits.perIp],
      schema: {
        tags: ['auth'],
        summary: 'Rotate a refresh token (RFC 6749 §6)',
        description: 'The presented refresh token is spent and a new pair is returned. Presenting a spent token again revokes its session, except within the reuse interval, where the same successor is returned.',
        security: PUBLIC_SECURITY,
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        body: Type.Object({
          refresh_token: Type.String({ minLength: 1, maxLength: 4096 }),
          grant_type: Type.Optional(Type.Literal('refresh_token'))
        }),
        response: {
          200: Type.Ref(TokenResponseSchema),
          400: Type.Ref(OAuthErrorSchema, { description: 'invalid_grant or invalid_request (RFC 6749 §5.2)' }),
          429: errorResponse('Too many refreshes from this address; see Retry-After'),
          503: errorResponse('A backing service is unavailable')
        }
      },
      errorHandler: function refreshErrors (error: FastifyError, request, reply) {
        // Malformed requests (schema, content type, body) are invalid_request; 429 stays a 429.
        if (error.validation || (error.statusCode && error.statusCode >= 400 && error.statusCode < 500 && error.statusCode !== 429 && !(error instanceof OAuthError))) {
          return handleError(new OAuthError('invalid_request', error.validation ? error.message : 'The request body is not a valid token request') as unknown as FastifyError, request, reply)
        }
        return handleError(error, request, reply)
      }
    }, async function refresh (request, reply) {
      const claims = tokens.verifyRefreshToken(request.body.refresh_token)
      const user = await users.findById(claims.sub)
      if (!user) throw invalidGrant()
      const result = await tokenStore.rotate({ userId: claims.sub, sid: claims.sid, jti: claims.jti, nextJti: randomUUID(), now: Date.now(), ...clientOf(request) })
      if (result.outcome === 'reuse') request.log.warn({ userId: claims.sub, sid: claims.sid }, 'refresh token reuse: session revoked')
      if (result.outcome !== 'rotated' && result.outcome !== 'grace') {
        throw invalidGrant()
      }
      reply.headers(NO_STORE)
      return tokens.tokenResponse({ userId: user.id, sid: claims.sid, roles: user.roles, refreshJti: result.jti, sessionExpiresAt: result.expiresAt })
    })
  })

  fastify.post('/logout', {
    onRequest: [fastify.authenticate],
    preValidation: absentBodyAsEmpty,
    schema: {
      tags: ['auth'],
      summary: 'End the current session',
      description: 'Its refresh token leaves the allowlist and its access tokens stop working. A refresh_token of another of your sessions in the body ends that one too; an invalid one is ignored (RFC 7009 §2.2).',
      security: BEARER_SECURITY,
      'x-body-optional': true,
      body: Type.Object({ refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'Logged out' }),
        400: errorResponse('Invalid body'),
        401: errorResponse('Missing, invalid or revoked access token'),
        503: errorResponse('A backing service is unavailable')
      }
    }
  }, async function logout (request, reply) {
    const { id: userId, sid, jti, exp } = request.user
    const now = Date.now()
    const presented = request.body.refresh_token
    if (presented) {
      const other = safely(() => tokens.verifyRefreshToken(presented))
      if (other && other.sub === userId && other.sid !== sid) await tokenStore.endSession({ userId, sid: other.sid, now })
    }
    await tokenStore.endSession({ userId, sid, accessJti: jti, accessExpiresAt: exp * 1000, now })
    return reply.code(204).send(null)
  })

  fastify.post('/logout-all', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'End every session of the user',
      security: BEARER_SECURITY,
      response: {
        204: Type.Null({ description: 'Every session ended' }),
        401: errorResponse('Missing, invalid or revoked access token'),
        503: errorResponse('A backing service is unavailable')
      }
    }
  }, async function logoutAll (request, reply) {
    await tokenStore.endSessions({ userId: request.user.id, now: Date.now() })
    return reply.code(204).send(null)
  })

  fastify.get('/sessions', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'List the live sessions of the user, newest first',
      security: BEARER_SECURITY,
      response: {
        200: Type.Array(Type.Object({
          id: Type.String({ format: 'uuid' }),
          created_at: Type.String({ format: 'date-time' }),
          last_used_at: Type.String({ format: 'date-time', description: 'Last login or refresh' }),
          expires_at: Type.String({ format: 'date-time', description: 'Absolute end of the session' }),
          user_agent: Type.Union([Type.String(), Type.Null()]),
          ip: Type.Union([Type.String(), Type.Null()]),
          current: Type.Boolean({ description: 'The session of the token that asked' })
        }, { additionalProperties: false })),
        401: errorResponse('Missing, invalid or revoked access token'),
        503: errorResponse('A backing service is unavailable')
      }
    }
  }, async function listSessions (request) {
    const sessions = await tokenStore.listSessions(request.user.id, Date.now())
    // Newest first, whatever order the store keeps them in.
    return sessions.sort((a, b) => b.createdAt - a.createdAt).map(s => ({
      id: s.id,
      created_at: new Date(s.createdAt).toISOString(),
      last_used_at: new Date(s.lastUsedAt).toISOString(),
      expires_at: new Date(s.expiresAt).toISOString(),
      user_agent: s.userAgent,
      ip: s.ip,
      current: s.id === request.user.sid
    }))
  })

  fastify.delete('/sessions/:id', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'End one session of the user',
      security: BEARER_SECURITY,
      params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
      response: {
        204: Type.Null({ description: 'Session ended' }),
        400: errorResponse('The id is not a UUID'),
        401: errorResponse('Missing, invalid or revoked access token'),
        404: errorResponse('No such session of this user'),
        503: errorResponse('A backing service is unavailable')
      }
    }
  }, async function revokeSession (request, reply) {
    const ended = await tokenStore.endSession({ userId: request.user.id, sid: request.params.id, now: Date.now() })
    if (!ended) throw new SessionNotFoundError()
    return reply.code(204).send(null)
  })

  fastify.post('/password', {
    onRequest: [fastify.authenticate],
    schema: {
      tags: ['auth'],
      summary: 'Change the password; every other session ends',
      security: BEARER_SECURITY,
      body: Type.Object({
        current_password: Type.String({ minLength: 1, maxLength: 128 }),
        new_password: Type.Ref(PasswordSchema)
      }, { additionalProperties: false }),
      response: {
        204: Type.Null({ description: 'Password changed' }),
        400: errorResponse('Invalid body'),
        401: errorResponse('Invalid access token, or the current password is wrong'),
        503: errorResponse('A backing service is unavailable or busy')
      }
    }
  }, async function changePassword (request, reply) {
    const user = await users.findById(request.user.id)
    if (!user) throw new InvalidCredentialsError()
    if (!await passwords.verify(user.passwordHash, request.body.current_password)) throw new WrongPasswordError()
    await users.setPasswordHash(user.id, await passwords.hash(request.body.new_password))
    await tokenStore.endSessions({ userId: user.id, except: request.user.sid, now: Date.now() })
    return reply.code(204).send(null)
  })
}

/** A POST without a body is a body with no fields (the body of /auth/logout is optional). */
async function absentBodyAsEmpty (request: FastifyRequest) {
  request.body ??= {}
}

function safely<T> (run: () => T): T | undefined {
  try {
    return run()
  } catch {
    return undefined
  }
}

export default authRoutes

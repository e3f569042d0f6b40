import cookie from '@fastify/cookie'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CsrfCheckError } from '../../src/errors.js'
import { CSRF_COOKIE_NAME, CSRF_HEADER, REFRESH_COOKIE_NAME, sameToken } from '../../src/refresh-cookie.js'
import { errorResponse, type ResponseHeaders, type TokenResponse } from '../../src/schemas.js'

/*
 * Cookie mode (REFRESH_COOKIE) as the routes see it: which cookies login and refresh set, how
 * refresh, logout and revoke read the refresh token from its cookie behind the CSRF check, and how
 * the OpenAPI document describes both.
 */

/** The routes that read the refresh-token cookie, under /auth: its cookie goes to these only. */
const COOKIE_ROUTES = ['refresh', 'logout', 'revoke'] as const

/** The token response of cookie mode: the refresh token is in the cookie, not the body. */
export type CookieTokenResponse = Omit<TokenResponse, 'refresh_token'>

/** The refresh token a request presents in its cookie, once it has passed the CSRF check. */
export interface CookieToken {
  refreshToken: string
  /** The X-CSRF-Token that passed, to be set again with the rotated refresh token. */
  csrfToken: string
}

export interface RefreshCookies {
  /**
   * The refresh token of the cookie, or undefined when the request sends none. A request that sends
   * one must pass the double-submit check, or this throws CsrfCheckError (403): the X-CSRF-Token
   * header equals the CSRF cookie, and, when the refresh token is valid, was issued for its session.
   */
  tokenOf (request: FastifyRequest): CookieToken | undefined
  /**
   * Puts the refresh token of `tokens` in its cookies, and a CSRF token for its session in the
   * readable cookie and the X-CSRF-Token response header (`csrfToken`, or a new one); returns the
   * body without `refresh_token`. The cookies live as long as the refresh token:
   * `refresh_expires_in`, its idle timeout cut short near the session's absolute end.
   */
  issue (reply: FastifyReply, tokens: TokenResponse, csrfToken?: string): CookieTokenResponse
  /** Expires every cookie of cookie mode in the browser. */
  clear (reply: FastifyReply): void
}

/**
 * Cookie parsing and Set-Cookie for the route's own scope: @fastify/cookie registered there, so the
 * host's routes never see it, unless the host's own @fastify/cookie already serves this scope.
 */
export async function acceptCookies (scope: FastifyInstance) {
  if (!scope.hasReplyDecorator('setCookie')) await scope.register(cookie)
}

/**
 * The cookies of cookie mode for the routes of `scope`, a scope under `<prefix>/auth`. The refresh
 * token's cookie is set once per route that reads it, each with that route's exact Path, so the
 * browser sends it to those three routes and nowhere else (one Path of `<prefix>/auth` would send it
 * to login, register and every other route under /auth too). The CSRF cookie has Path=/ so that the
 * app's scripts can read it from any page of the origin.
 */
export function refreshCookies (scope: FastifyInstance): RefreshCookies {
  const { tokens, csrfTokens } = scope.tollgate
  const paths = COOKIE_ROUTES.map(route => `${scope.prefix}/${route}`)
  const attributes = { secure: true, sameSite: 'strict' } as const

  function cookiesOf (request: FastifyRequest): Record<string, string | undefined> {
    // A host's @fastify/cookie may be registered without its parsing hook.
    return request.cookies ?? (request.headers.cookie ? scope.parseCookie(request.headers.cookie) : {})
  }

  return {
    tokenOf (request) {
      const cookies = cookiesOf(request)
      const refreshToken = cookies[REFRESH_COOKIE_NAME]
      if (!refreshToken) return undefined
      const header = request.headers[CSRF_HEADER.toLowerCase()]
      const csrfCookie = cookies[CSRF_COOKIE_NAME]
      if (typeof header !== 'string' || !csrfCookie || !sameToken(header, csrfCookie)) throw new CsrfCheckError()
      // An invalid refresh token is refused by the grant that reads it; a valid one must be the
      // session the CSRF token was issued for.
      const sid = sessionOf(refreshToken)
      if (sid !== undefined && !csrfTokens.isValid(header, sid)) throw new CsrfCheckError()
      return { refreshToken, csrfToken: header }
    },

    issue (reply, response, csrfToken) {
      const { refresh_token: refreshToken, ...body } = response
      const maxAge = response.refresh_expires_in
      for (const path of paths) reply.setCookie(REFRESH_COOKIE_NAME, refreshToken, { ...attributes, path, httpOnly: true, maxAge })
      const csrf = csrfToken ?? csrfTokens.issue(tokens.verifyRefreshToken(refreshToken).sid)
      reply.setCookie(CSRF_COOKIE_NAME, csrf, { ...attributes, path: '/', httpOnly: false, maxAge })
      reply.header(CSRF_HEADER, csrf)
      return body
    },

    clear (reply) {
      for (const path of paths) reply.clearCookie(REFRESH_COOKIE_NAME, { ...attributes, path, httpOnly: true })
      reply.clearCookie(CSRF_COOKIE_NAME, { ...attributes, path: '/', httpOnly: false })
    }
  }

  function sessionOf (refreshToken: string): string | undefined {
    try {
      return tokens.verifyRefreshToken(refreshToken).sid
    } catch {
      return undefined
    }
  }
}

// The OpenAPI side. The security scheme names are those of plugins/swagger.ts.

/** `security` of a route that also takes the refresh token from the cookie, with the CSRF header. */
export const COOKIE_SECURITY = { refreshCookie: [], csrfToken: [] }

/** The cookies a response sets (one header name in OpenAPI, several headers on the wire). */
export const SET_COOKIES: ResponseHeaders = {
  'Set-Cookie': Type.String({ description: `REFRESH_COOKIE: \`${REFRESH_COOKIE_NAME}\` (the refresh token; HttpOnly, Secure, SameSite=Strict, once for each of the Paths …/auth/refresh, …/auth/logout and …/auth/revoke) and \`${CSRF_COOKIE_NAME}\` (the CSRF token, readable by scripts; Path=/), each with Max-Age the refresh token's remaining lifetime, \`refresh_expires_in\`` }),
  [CSRF_HEADER]: Type.String({ description: `The CSRF token, as in the \`${CSRF_COOKIE_NAME}\` cookie: for an app on another origin, which cannot read that cookie` })
}

/** The cookies a response expires. */
export const CLEAR_COOKIES: ResponseHeaders = {
  'Set-Cookie': Type.String({ description: `REFRESH_COOKIE: \`${REFRESH_COOKIE_NAME}\` and \`${CSRF_COOKIE_NAME}\` expired (Max-Age=0), so the browser drops them` })
}

/** The 403 of a request that sends the refresh-token cookie without a matching X-CSRF-Token. */
export const csrfRefused = () => errorResponse(`CSRF_CHECK_FAILED: the request sends the \`${REFRESH_COOKIE_NAME}\` cookie but no \`${CSRF_HEADER}\` header equal to the \`${CSRF_COOKIE_NAME}\` cookie; nothing was done`)

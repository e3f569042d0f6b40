import fp from 'fastify-plugin'
import { ForbiddenJsonKeyError } from '../src/errors.js'

/**
 * Tollgate's routes parse JSON bodies and nothing else, whatever parsers the host registered before
 * Tollgate (@fastify/formbody, multipart, a catch-all `*`, its own text/plain or JSON): any other
 * content type is a 415 (invalid_request on the OAuth endpoints). A cross-site HTML form can send
 * only urlencoded, multipart and text/plain bodies, so none of them reaches login or register (login
 * CSRF in cookie mode) or any other route. The OAuth endpoints add their own form parser, in their
 * own scope (routes/auth/grant-support.ts). Registered in Tollgate's encapsulated scope: the host's
 * routes keep their parsers.
 */
export default fp(async function jsonBodiesPlugin (fastify) {
  fastify.removeAllContentTypeParsers()
  // Fastify's own JSON parser, with its defaults for __proto__ and constructor.prototype: an error.
  // Its error says "not valid JSON" either way, so a body it refuses that JSON.parse accepts is told
  // which rule it broke (this costs only refused bodies a second parse).
  const parseJson = fastify.getDefaultJsonParser('error', 'error')
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, function json (request, body, done) {
    parseJson(request, body as string, (err, parsed) => {
      if (err && isJson(body as string)) done(new ForbiddenJsonKeyError(), undefined)
      else done(err, parsed)
    })
  })
}, { name: 'tollgate-json-bodies', fastify: '5.x' })

function isJson (text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

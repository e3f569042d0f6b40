import fp from 'fastify-plugin'

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
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, fastify.getDefaultJsonParser('error', 'error'))
}, { name: 'tollgate-json-bodies', fastify: '5.x' })

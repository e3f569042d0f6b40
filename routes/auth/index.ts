import type { FastifyPluginAsync } from 'fastify'
import emailVerificationRoutes from './email-verification.js'
import introspectRoute from './introspect.js'
import loginRoute from './login.js'
import logoutRoutes from './logout.js'
import passwordRoute from './password.js'
import passwordResetRoutes from './password-reset.js'
import refreshRoute from './refresh.js'
import registerRoute from './register.js'
import revokeRoute from './revoke.js'
import sessionsRoutes from './sessions.js'

/** Everything under /auth: accounts, the grants, revocation and introspection, and the user's sessions. */
const authRoutes: FastifyPluginAsync = async function authRoutes (fastify) {
  await fastify.register(registerRoute)
  await fastify.register(loginRoute)
  await fastify.register(refreshRoute)
  await fastify.register(revokeRoute)
  // Only with clients that may use it: without credentials to check it must not exist.
  if (fastify.tollgate.config.INTROSPECTION_CLIENTS) await fastify.register(introspectRoute)
  await fastify.register(logoutRoutes)
  await fastify.register(sessionsRoutes)
  await fastify.register(passwordRoute)
  await fastify.register(emailVerificationRoutes)
  await fastify.register(passwordResetRoutes)
}

export default authRoutes

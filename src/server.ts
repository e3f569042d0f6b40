import closeWithGrace from 'close-with-grace'
import Fastify from 'fastify'
import buildApp from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { serverOptions } from './server-options.js'

let config: Config
try {
  config = loadConfig(process.env)
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  console.error(err.message)
  process.exit(1)
}

const app = Fastify(serverOptions(config))
await app.register(buildApp, { config })

closeWithGrace({ delay: 10_000 }, async function shutdown ({ signal, err }) {
  if (err) app.log.error({ err }, 'server closing after an error')
  else app.log.info({ signal }, 'server closing')
  await app.close()
})

const address = await app.listen({ host: config.HOST, port: config.PORT })
app.log.info(`API docs at ${address}/docs`)

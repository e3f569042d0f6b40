import { appendFileSync } from 'node:fs'
import { createRequire, register } from 'node:module'
import { pathToFileURL } from 'node:url'

// Preloaded with `node --import`: writes the URL of every module the process loads to $LOAD_LOG,
// one a line, so check-light.ts can tell which packages an import pulls in.

const logFile = process.env.LOAD_LOG
if (!logFile) throw new Error('record-loads: set LOAD_LOG to the file to write')

// ES modules: every resolution, seen from the loader thread.
register('./record-loads-hooks.js', import.meta.url, { data: { logFile } })

// CommonJS modules (MikroORM and argon2 are CommonJS) never reach the ESM hooks on Node 20: the
// module cache lists them, so it is written at exit.
const require = createRequire(import.meta.url)
process.on('exit', function logCommonJs () {
  appendFileSync(logFile, Object.keys(require.cache).map(path => `${pathToFileURL(path).href}\n`).join(''))
})

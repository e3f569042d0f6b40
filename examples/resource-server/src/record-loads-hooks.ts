import { appendFileSync } from 'node:fs'
import type { InitializeHook, ResolveHook } from 'node:module'

// Module customization hooks, registered by record-loads.ts: they run on the loader thread.

let logFile = ''

export const initialize: InitializeHook<{ logFile: string }> = function initialize (data) {
  logFile = data.logFile
}

export const resolve: ResolveHook = async function resolve (specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context)
  appendFileSync(logFile, `${resolved.url}\n`)
  return resolved
}

import { readFile } from 'node:fs/promises'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, hitCount?: number }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples?: number[], timeDeltas?: number[] }

export interface SelfTime { name: string, where: string, ms: number, percent: number }
export interface ProfileSummary {
  file: string
  /** Sampled time, ms, without (idle). */
  busyMs: number
  idleMs: number
  top: SelfTime[]
  /** Self time grouped by origin: a package under node_modules, node: internals, the project's own code, GC… */
  byOrigin: Array<{ origin: string, ms: number, percent: number }>
  /**
   * Self time in the native socket writes (HTTP responses, Redis and PostgreSQL commands). Sampled
   * wall time: it includes waiting for a core after the write woke the reading process.
   */
  socketWritesMs: number
}

// The native functions under net.Socket writes (libuv write/writev through stream_base).
const SOCKET_WRITES = new Set(['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString', 'writeUcs2String'])

const META = new Set(['(idle)', '(program)', '(garbage collector)', '(root)'])

export function originOf (frame: CallFrame): string {
  if (META.has(frame.functionName)) return frame.functionName
  const url = frame.url
  if (!url) return '(native/V8 builtins)'
  if (url.startsWith('node:')) return 'node: internals'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) {
    // Report the innermost package (node_modules may nest).
    const all = [...url.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)]
    return all[all.length - 1]?.[1] ?? pkg[1] ?? url
  }
  const own = /\/(src|plugins|routes|bench)\//.exec(url)
  return own ? `tollgate ${own[1]}/` : url
}

function shortUrl (url: string): string {
  const i = url.lastIndexOf('node_modules/')
  if (i >= 0) return url.slice(i + 'node_modules/'.length)
  const own = /\/((?:src|plugins|routes|bench)\/.*)$/.exec(url)
  return own?.[1] ?? url.replace(/^file:\/\//, '')
}

/** A time window in microseconds of the monotonic clock (process.hrtime), which V8 profiles also use. */
export interface Window { fromUs: number, toUs: number }

export function nowUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/**
 * Self time per function of a .cpuprofile (Chrome DevTools format, as `node --cpu-prof` writes),
 * counting only the samples inside `window` when given (e.g. the measured rounds, not boot).
 */
export async function summariseProfile (file: string, topN = 15, window?: Window): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const selfUs = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  if (samples.length > 0 && deltas.length === samples.length) {
    // timeDeltas[i] is the gap before sample i; charge the gap after a sample to it.
    let t = profile.startTime
    for (let i = 0; i < samples.length; i++) {
      t += deltas[i] as number
      if (window && (t < window.fromUs || t > window.toUs)) continue
      const id = samples[i] as number
      const dt = deltas[i + 1] ?? 0
      selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt))
    }
  } else {
    const total = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1
    const span = profile.endTime - profile.startTime
    for (const n of profile.nodes) selfUs.set(n.id, ((n.hitCount ?? 0) / total) * span)
  }

  const byFunction = new Map<string, SelfTime>()
  const byOrigin = new Map<string, number>()
  let idleUs = 0
  let busyUs = 0
  let socketWritesUs = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)
    if (!node) continue
    const frame = node.callFrame
    if (frame.functionName === '(idle)') {
      idleUs += us
      continue
    }
    busyUs += us
    if (frame.url === '' && SOCKET_WRITES.has(frame.functionName)) socketWritesUs += us
    const name = frame.functionName || '(anonymous)'
    const where = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : ''
    const key = `${name} ${where}`
    const entry = byFunction.get(key) ?? { name, where, ms: 0, percent: 0 }
    entry.ms += us / 1000
    byFunction.set(key, entry)
    const origin = originOf(frame)
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + us / 1000)
  }
  const busyMs = busyUs / 1000
  const pct = (ms: number) => busyMs > 0 ? Math.round((ms / busyMs) * 1000) / 10 : 0
  const top = [...byFunction.values()].sort((x, y) => y.ms - x.ms).slice(0, topN)
    .map(e => ({ ...e, ms: Math.round(e.ms), percent: pct(e.ms) }))
  return {
    file,
    busyMs: Math.round(busyMs),
    idleMs: Math.round(idleUs / 1000),
    top,
    byOrigin: [...byOrigin.entries()].sort((x, y) => y[1] - x[1]).map(([origin, ms]) => ({ origin, ms: Math.round(ms), percent: pct(ms) })),
    socketWritesMs: Math.round(socketWritesUs / 1000)
  }
}

/** `requests`: how many the profiled server answered in the window, for per-request figures. */
export function formatProfile (title: string, s: ProfileSummary, requests = 0, origins = 12): string {
  const lines = [`${title}: ${s.busyMs} ms busy, ${s.idleMs} ms idle (self time, % of busy)`]
  const perRequest = (ms: number) => requests > 0 ? `, ${Math.round(ms * 1000 / requests)} µs per request` : ''
  lines.push(`  busy${perRequest(s.busyMs)}; socket writes ${s.busyMs > 0 ? Math.round(s.socketWritesMs / s.busyMs * 100) : 0} % of busy${perRequest(s.socketWritesMs)} (${requests} requests)`)
  lines.push('  top functions:')
  for (const f of s.top) lines.push(`    ${String(f.percent).padStart(5)} %  ${String(f.ms).padStart(6)} ms  ${f.name}  ${f.where}`)
  lines.push('  by origin:')
  for (const o of s.byOrigin.slice(0, origins)) lines.push(`    ${String(o.percent).padStart(5)} %  ${String(o.ms).padStart(6)} ms  ${o.origin}`)
  return lines.join('\n')
}

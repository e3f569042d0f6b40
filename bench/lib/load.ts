import autocannon, { type Request as LoadRequest } from 'autocannon'
import { HOST, inParallel, login, post } from './http.js'
import { serverCpu, type ServerHandle } from './servers.js'
import { LatencyRecorder } from './stats.js'

export type { LoadRequest }
export type Budget = { durationS: number } | { amount: number }

export interface Measurement {
  /** Successful (2xx; for e: verified) operations per second. */
  rps: number
  p50: number
  p99: number
  ok: number
  non2xx: number
  errors: number
  timeouts: number
  seconds: number
  statusCodes: Record<string, number>
  /** The first few bodies of each non-2xx status, to say what went wrong. */
  failures: Record<string, string[]>
  /** Cores used during the run: the server process (all threads) and this process (autocannon). */
  serverCores: number
  /** The server's main (event-loop) thread alone; null off Linux. Near 1.0 means the event loop is the bottleneck. */
  serverMainCores?: number | null
  loaderCores: number
  /** Filled in around the run: machine-wide, Redis, the benchmark database's backends, everything else. */
  machineCores?: number | null
  redisCores?: number | null
  postgresCores?: number
  otherCores?: number | null
  stealCores?: number | null
}

export function problemsOf (m: Measurement): number {
  return m.non2xx + m.errors + m.timeouts
}

/** One autocannon run against `server`; latencies are recorded here (2xx only, sub-ms precision). */
export async function load (server: ServerHandle, requests: LoadRequest[], budget: Budget, connections: number): Promise<Measurement> {
  const latencies = new LatencyRecorder()
  const failures: Record<string, string[]> = {}
  const withCapture = requests.map((request): LoadRequest => ({
    ...request,
    onResponse (status, body, context, headers) {
      request.onResponse?.(status, body, context, headers)
      if (status < 200 || status >= 300) {
        const seen = failures[status] ??= []
        if (seen.length < 3) seen.push(body.slice(0, 300))
      }
    }
  }))
  const serverCpuStart = await serverCpu(server)
  const loaderCpuStart = process.cpuUsage()
  const start = performance.now()
  let last = start
  const instance = autocannon({
    url: `http://${HOST}:${server.port}`,
    connections,
    pipelining: 1,
    timeout: 10,
    requests: withCapture,
    ...('durationS' in budget ? { duration: budget.durationS } : { amount: budget.amount })
  })
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    last = performance.now()
    if (status >= 200 && status < 300) latencies.record(ms)
  })
  // Bounded even if the server stops answering.
  const limitMs = 'durationS' in budget ? budget.durationS * 1000 + 20_000 : 120_000
  const guard = setTimeout(() => instance.stop(), limitMs)
  const result = await instance
  clearTimeout(guard)
  const wall = performance.now() - start
  const loaderCpu = process.cpuUsage(loaderCpuStart)
  const serverCpuEnd = await serverCpu(server)
  // Rates use the time to the last response: autocannon ends an `amount` run up to a second late.
  const seconds = Math.max(0.001, (last - start) / 1000)
  const statusCodes: Record<string, number> = {}
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = count
  return {
    rps: result['2xx'] / seconds,
    ...latencies.percentiles(),
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds,
    statusCodes,
    failures,
    serverCores: (serverCpuEnd.micros - serverCpuStart.micros) / 1000 / wall,
    serverMainCores: serverCpuEnd.mainMicros === null || serverCpuStart.mainMicros === null ? null : (serverCpuEnd.mainMicros - serverCpuStart.mainMicros) / 1000 / wall,
    loaderCores: (loaderCpu.user + loaderCpu.system) / 1000 / wall
  }
}

/**
 * One GET per user's access token; each connection cycles through them. Fixed requests, as in a:
 * autocannon builds each request once, where a setupRequest callback would make it rebuild every
 * request, which cost the load generator (on the server's machine) ~50 % more CPU per request.
 */
export function bearerRequests (path: string, tokens: string[]): LoadRequest[] {
  return tokens.map(token => ({ method: 'GET', path, headers: { authorization: `Bearer ${token}` } }))
}

export interface RefreshSession { email: string, refreshToken: string }

/**
 * A FIFO pool of live refresh tokens, one per session. A request takes a token; its response puts the
 * successor back (autocannon calls onResponse of a request before it builds that connection's next
 * one, and the context lives from setupRequest to onResponse). Tokens in flight when a run stops are
 * recovered afterwards: presented again, a token rotated moments ago gets the same successor (the
 * reuse interval), an unprocessed one simply rotates; failing both, the user logs in again.
 */
export class RefreshPool {
  private readonly queue: RefreshSession[] = []
  private readonly inFlight = new Set<RefreshSession>()
  private readonly failed: RefreshSession[] = []
  recovered = 0
  relogged = 0

  constructor (sessions: RefreshSession[]) {
    this.queue.push(...sessions)
  }

  get size () { return this.queue.length }

  request (): LoadRequest {
    return {
      method: 'POST',
      path: '/auth/refresh',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request, context) => {
        const session = this.queue.shift()
        // An empty pool (more connections than sessions) sends a bad token: a visible 400, not a hang.
        if (!session) return { ...request, body: '{"refresh_token":"pool-empty"}' }
        context.session = session
        this.inFlight.add(session)
        return { ...request, body: `{"refresh_token":"${session.refreshToken}"}` }
      },
      onResponse: (status, body, context) => {
        const session = context.session as RefreshSession | undefined
        if (!session) return
        this.inFlight.delete(session)
        const token = status === 200 ? /"refresh_token":"([^"]+)"/.exec(body)?.[1] : undefined
        if (token) {
          session.refreshToken = token
          this.queue.push(session)
        } else {
          this.failed.push(session)
        }
      }
    }
  }

  /** Puts every session in flight or failed back into the pool with a live token. */
  async recover (port: number): Promise<void> {
    await new Promise(resolve => setTimeout(resolve, 250))
    const lost = [...this.inFlight, ...this.failed.splice(0)]
    this.inFlight.clear()
    await inParallel(lost, 8, async session => {
      const res = await post(port, '/auth/refresh', { refresh_token: session.refreshToken })
      if (res.status === 200) {
        session.refreshToken = res.json.refresh_token as string
        this.recovered++
      } else {
        session.refreshToken = (await login(port, session.email)).refresh
        this.relogged++
      }
      this.queue.push(session)
    })
  }
}

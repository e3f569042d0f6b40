// The part of autocannon 8's API the harness uses (the package ships no types).
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  export type Context = Record<string, unknown>

  export interface Request {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string | Buffer
    /** Called before each send; the context lives from this call to the onResponse of the same request. */
    setupRequest?: (request: Request, context: Context) => Request | null | undefined
    onResponse?: (status: number, body: string, context: Context, headers: Record<string, string | string[]>) => void
  }

  export interface Options {
    url: string
    connections?: number
    pipelining?: number
    /** Seconds. */
    duration?: number
    /** Total responses, spread over the connections. */
    amount?: number
    /** Seconds. */
    timeout?: number
    requests?: Request[]
  }

  export interface Result {
    errors: number
    timeouts: number
    mismatches: number
    non2xx: number
    resets: number
    '2xx': number
    duration: number
    statusCodeStats: Record<string, { count: number }>
  }

  export interface Instance extends EventEmitter, PromiseLike<Result> {
    stop (): void
  }

  export default function autocannon (options: Options): Instance
}

// The setup's HTTP calls (register, log in, recover a refresh token): fetch, each with a timeout.
export const HOST = '127.0.0.1'
export const PASSWORD = 'correct horse battery staple'
const TIMEOUT_MS = 15_000

export async function post (port: number, path: string, body: unknown): Promise<{ status: number, json: Record<string, unknown> }> {
  const res = await fetch(`http://${HOST}:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS)
  })
  const text = await res.text()
  return { status: res.status, json: text ? JSON.parse(text) as Record<string, unknown> : {} }
}

export async function register (port: number, email: string): Promise<string> {
  const res = await post(port, '/auth/register', { email, password: PASSWORD })
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${JSON.stringify(res.json)}`)
  return res.json.id as string
}

export async function login (port: number, email: string): Promise<{ access: string, refresh: string }> {
  const res = await post(port, '/auth/login', { email, password: PASSWORD })
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${JSON.stringify(res.json)}`)
  return { access: res.json.access_token as string, refresh: res.json.refresh_token as string }
}

/** Runs `task` over `items` with at most `limit` at once. */
export async function inParallel<T, R> (items: T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  async function lane () {
    while (next < items.length) {
      const i = next++
      out[i] = await task(items[i] as T, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
  return out
}

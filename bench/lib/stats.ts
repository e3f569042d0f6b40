/** The q-quantile (0..1) of sorted values, by nearest rank; NaN when empty. */
export function quantile (sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] as number
}

export function median (values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((x, y) => x - y)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** A bounded recorder of latencies in ms; beyond `capacity` it keeps counting but stops storing. */
export class LatencyRecorder {
  private readonly values: Float64Array
  private length = 0
  count = 0

  constructor (capacity = 5_000_000) {
    this.values = new Float64Array(capacity)
  }

  record (ms: number): void {
    this.count++
    if (this.length < this.values.length) this.values[this.length++] = ms
  }

  percentiles (): { p50: number, p99: number } {
    const sorted = this.values.subarray(0, this.length).sort()
    return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) }
  }
}

export function round (value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value
  const f = 10 ** digits
  return Math.round(value * f) / f
}

import { readdir, readFile } from 'node:fs/promises'
import os from 'node:os'
import type { Redis } from 'ioredis'

/** CPU accounting for one scenario, so a busy machine (other processes) is visible in the results. */
export interface CpuSnapshot {
  at: number
  /** Machine-wide, from /proc/stat (USER_HZ ticks); null off Linux. */
  busyTicks: number | null
  stealTicks: number | null
  totalTicks: number | null
  redisSeconds: number | null
  /** utime+stime ticks of each PostgreSQL backend serving the benchmark database. */
  postgres: Map<number, number>
}

export interface CpuBreakdown {
  /** Cores in use, machine-wide, during the window (user+system+irq, without steal). */
  machine: number | null
  redis: number | null
  postgres: number
  /** Cores the hypervisor took (steal). */
  steal: number | null
}

const TICK = 100 // USER_HZ on Linux

async function procStat (): Promise<{ busy: number, steal: number, total: number } | null> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? ''
    const [, ...fields] = line.trim().split(/\s+/)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields.map(Number)
    const busy = user + nice + system + irq + softirq
    return { busy, steal, total: busy + idle + iowait + steal }
  } catch {
    return null
  }
}

async function postgresBackends (database: string): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  let pids: string[]
  try {
    pids = (await readdir('/proc')).filter(p => /^\d+$/.test(p))
  } catch {
    return out
  }
  for (const pid of pids) {
    try {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8')
      if (!cmdline.startsWith('postgres') || !cmdline.includes(database)) continue
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
      // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(pid), Number(rest[11]) + Number(rest[12]))
    } catch { /* the process ended meanwhile */ }
  }
  return out
}

async function redisCpu (redis: Redis): Promise<number | null> {
  try {
    const info = await redis.info('cpu')
    const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1])
    const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1])
    return Number.isFinite(sys + user) ? sys + user : null
  } catch {
    return null
  }
}

export async function cpuSnapshot (redis: Redis, database: string): Promise<CpuSnapshot> {
  const [stat, redisSeconds, postgres] = await Promise.all([procStat(), redisCpu(redis), postgresBackends(database)])
  return { at: performance.now(), busyTicks: stat?.busy ?? null, stealTicks: stat?.steal ?? null, totalTicks: stat?.total ?? null, redisSeconds, postgres }
}

export function cpuBetween (a: CpuSnapshot, b: CpuSnapshot): CpuBreakdown {
  const seconds = (b.at - a.at) / 1000
  const cores = (ticks: number) => ticks / TICK / seconds
  let pgTicks = 0
  for (const [pid, ticks] of b.postgres) pgTicks += ticks - (a.postgres.get(pid) ?? 0)
  const machine = a.busyTicks !== null && b.busyTicks !== null && a.totalTicks !== null && b.totalTicks !== null
    // Scale by the tick total so that the machine figure is exact in cores (nproc × busy share).
    ? os.availableParallelism() * (b.busyTicks - a.busyTicks) / Math.max(1, b.totalTicks - a.totalTicks)
    : null
  const steal = a.stealTicks !== null && b.stealTicks !== null && a.totalTicks !== null && b.totalTicks !== null
    ? os.availableParallelism() * (b.stealTicks - a.stealTicks) / Math.max(1, b.totalTicks - a.totalTicks)
    : null
  return {
    machine,
    redis: a.redisSeconds !== null && b.redisSeconds !== null ? (b.redisSeconds - a.redisSeconds) / seconds : null,
    postgres: cores(Math.max(0, pgTicks)),
    steal
  }
}

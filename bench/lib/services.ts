import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { Redis } from 'ioredis'
import pg from 'pg'
import { round } from './stats.js'

// This machine kind's services (and CI's): PostgreSQL with trust auth, Redis, both on 127.0.0.1.
export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432'
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'

export async function withPg<T> (database: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: `${POSTGRES_URL}/${database}`, connectionTimeoutMillis: 5_000 })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

/** A fresh database `tollgate_bench_<random>`; returns its name. */
export async function createDatabase (): Promise<string> {
  const name = `tollgate_bench_${randomBytes(6).toString('hex')}`
  await withPg('postgres', c => c.query(`create database "${name}"`))
  return name
}

export async function dropDatabase (name: string): Promise<void> {
  await withPg('postgres', c => c.query(`drop database if exists "${name}" with (force)`))
}

export function redisClient (): Redis {
  return new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 5_000, commandTimeout: 10_000, maxRetriesPerRequest: 1 })
}

export async function withRedis<T> (run: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = redisClient()
  await redis.connect()
  try {
    return await run(redis)
  } finally {
    redis.disconnect()
  }
}

/** Every key matching `pattern`, by SCAN (bounded). */
export async function scanKeys (redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  for (let i = 0; i < 100_000; i++) {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    keys.push(...found)
    cursor = next
    if (cursor === '0') break
  }
  return keys
}

export async function deleteRedisPrefix (prefix: string): Promise<number> {
  return withRedis(async redis => {
    const keys = await scanKeys(redis, `${prefix}:*`)
    let deleted = 0
    for (let i = 0; i < keys.length; i += 500) deleted += await redis.del(...keys.slice(i, i + 500))
    return deleted
  })
}

export async function machineInfo () {
  const postgres = await withPg('postgres', c => c.query<{ server_version: string }>('show server_version')).then(r => r.rows[0]?.server_version ?? '?')
  const redis = await withRedis(r => r.info('server')).then(info => /redis_version:(\S+)/.exec(info)?.[1] ?? '?')
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? '?',
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    postgres,
    redis,
    loadAverageAtStart: round(os.loadavg()[0] ?? 0, 2)
  }
}

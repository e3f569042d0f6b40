// The settings that say how to reach Redis (issue 12): one of a URL, a Cluster's seeds or
// sentinels, and each auth or TLS setting only where it applies. As variables and as options.
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { OptionsError, configFromOptions } from '../src/options.js'
import { configError, named } from './config-support.js'

const NODES = '127.0.0.1:7000,redis-1.internal:7001,[::1]:7002'
const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'

t.test('valid combinations', async t => {
  t.equal(loadConfig({ REDIS_CLUSTER_NODES: NODES }).REDIS_CLUSTER_NODES, NODES, 'cluster seeds, IPv6 in brackets')
  const sentinel = loadConfig({
    REDIS_SENTINELS: '10.0.0.1:26379,10.0.0.2:26379',
    REDIS_SENTINEL_NAME: 'mymaster',
    REDIS_USERNAME: 'tollgate',
    REDIS_PASSWORD: 'data-secret',
    REDIS_SENTINEL_USERNAME: 'watcher',
    REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
    REDIS_TLS: 'true',
    REDIS_TLS_CA: CA,
    REDIS_WAIT_REPLICAS: '1'
  })
  t.match(sentinel, { REDIS_TLS: true, REDIS_WAIT_REPLICAS: 1, REDIS_SENTINEL_NAME: 'mymaster' })
  t.match(loadConfig({ REDIS_CLUSTER_NODES: NODES, REDIS_PASSWORD: 'x', REDIS_TLS: 'true' }), { REDIS_TLS: true })
  t.match(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_WAIT_REPLICAS: '2' }), { REDIS_WAIT_REPLICAS: 2 })
  t.match(loadConfig({}), { REDIS_TLS: false, REDIS_WAIT_REPLICAS: 0 }, 'defaults')
})

t.test('each bad combination is named', async t => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ['URL and cluster', { REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: NODES }, 'REDIS_CLUSTER_NODES'],
    ['cluster and sentinels', { REDIS_CLUSTER_NODES: NODES, REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINELS'],
    ['a seed without a port', { REDIS_CLUSTER_NODES: '127.0.0.1' }, 'REDIS_CLUSTER_NODES'],
    ['a seed list with a space', { REDIS_CLUSTER_NODES: 'a:1, b:2' }, 'REDIS_CLUSTER_NODES'],
    ['sentinels without a name', { REDIS_SENTINELS: 'a:26379' }, 'REDIS_SENTINEL_NAME'],
    ['a name without sentinels', { REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINEL_NAME'],
    ['a sentinel password without sentinels', { REDIS_CLUSTER_NODES: NODES, REDIS_SENTINEL_PASSWORD: 'x' }, 'REDIS_SENTINEL_PASSWORD'],
    ['a password with a URL', { REDIS_URL: 'redis://a:6379', REDIS_PASSWORD: 'x' }, 'REDIS_PASSWORD'],
    ['TLS with a URL', { REDIS_URL: 'redis://a:6379', REDIS_TLS: 'true' }, 'REDIS_TLS'],
    ['a password without Redis', { REDIS_PASSWORD: 'x' }, 'REDIS_PASSWORD'],
    ['a user without a password', { REDIS_CLUSTER_NODES: NODES, REDIS_USERNAME: 'u' }, 'REDIS_USERNAME'],
    ['a sentinel user without a password', { REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm', REDIS_SENTINEL_USERNAME: 'u' }, 'REDIS_SENTINEL_USERNAME'],
    ['a CA without TLS', { REDIS_CLUSTER_NODES: NODES, REDIS_TLS_CA: CA }, 'REDIS_TLS_CA'],
    ['a CA that is no PEM', { REDIS_CLUSTER_NODES: NODES, REDIS_TLS: 'true', REDIS_TLS_CA: 'not a certificate' }, 'REDIS_TLS_CA'],
    ['TLS not a boolean', { REDIS_CLUSTER_NODES: NODES, REDIS_TLS: 'yes' }, 'REDIS_TLS'],
    ['WAIT on a cluster', { REDIS_CLUSTER_NODES: NODES, REDIS_WAIT_REPLICAS: '1' }, 'REDIS_WAIT_REPLICAS'],
    ['WAIT out of range', { REDIS_URL: 'redis://a:6379', REDIS_WAIT_REPLICAS: '9' }, 'REDIS_WAIT_REPLICAS']
  ]
  for (const [name, input, variable] of cases) {
    const error = configError(t, input)
    t.ok(named(error).includes(variable), `${name}: names ${variable} (${JSON.stringify(error?.problems)})`)
  }
})

t.test('no problem message repeats a Redis password', async t => {
  const error = configError(t, { REDIS_URL: 'redis://a:6379', REDIS_PASSWORD: 'hunter2-data', REDIS_SENTINEL_PASSWORD: 'hunter2-sentinel' })
  t.notMatch(error?.message ?? '', /hunter2/)
})

t.test('as plugin options: lists as arrays, booleans as booleans, problems named as options', async t => {
  const config = configFromOptions({ redisClusterNodes: ['127.0.0.1:7000', '127.0.0.1:7001'], redisPassword: 'x', redisTls: true })
  t.match(config, { REDIS_CLUSTER_NODES: '127.0.0.1:7000,127.0.0.1:7001', REDIS_TLS: true })
  t.match(configFromOptions({ redisSentinels: ['a:26379'], redisSentinelName: 'm', redisWaitReplicas: 1 }), { REDIS_SENTINELS: 'a:26379', REDIS_WAIT_REPLICAS: 1 })
  const problems = (options: Parameters<typeof configFromOptions>[0]) => {
    try {
      configFromOptions(options)
    } catch (err) {
      t.type(err, OptionsError)
      return (err as OptionsError).problems
    }
    t.fail(`accepted ${JSON.stringify(options)}`)
    return []
  }
  t.match(problems({ redis: 'redis://a:6379', redisClusterNodes: ['a:1'] }), [/^redisClusterNodes: set one of redis, redisClusterNodes and redisSentinels/])
  t.match(problems({ redisTls: 'true' as unknown as boolean }), ['redisTls: expected true or false'])
  t.match(problems({ redisClusterNodes: ['a:1', ''] }), ['redisClusterNodes: expected a list of non-empty strings'])
  t.match(problems({ redisSentinels: ['a:1'] }), [/^redisSentinelName: required with redisSentinels/])
})

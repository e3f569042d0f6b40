// Assertions shared by the configuration tests (config.test.ts, config-oauth.test.ts).
import type { Test } from 'tap'
import { ConfigError, loadConfig, type ConfigInput } from '../src/config.js'

/** The ConfigError that loadConfig throws for `input`, or a failed assertion. */
export function configError (t: Test, input: ConfigInput): ConfigError | undefined {
  try {
    loadConfig(input)
  } catch (err) {
    t.type(err, ConfigError, 'a ConfigError')
    return err as ConfigError
  }
  t.fail(`loadConfig accepted ${JSON.stringify(input)}`)
  return undefined
}

/** The variables (or options) a ConfigError or OptionsError names, from `problems` ("NAME: what is wrong"). */
export const named = (error: { readonly problems: readonly string[] } | undefined) => (error?.problems ?? []).map(p => p.split(':')[0] ?? '')

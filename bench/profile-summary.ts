/** Prints the self-time summary of .cpuprofile files: node --import tsx bench/profile-summary.ts FILE… [--top N] */
import { parseArgs } from 'node:util'
import { formatProfile, summariseProfile } from './lib/profile.js'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '20' } } })
if (positionals.length === 0) {
  console.error('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile… [--top N]')
  process.exit(2)
}
for (const file of positionals) {
  console.log(formatProfile(file, await summariseProfile(file, Number(values.top))))
}

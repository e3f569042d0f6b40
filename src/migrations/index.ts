import { Migration20261123000000CreateUsers } from './Migration20261123000000CreateUsers.js'
import { Migration20261130000000AccountRecovery } from './Migration20261130000000AccountRecovery.js'

// Listed explicitly so the same list works from TypeScript sources and from the build.
export const migrationsList = [
  { name: 'Migration20261123000000CreateUsers', class: Migration20261123000000CreateUsers },
  { name: 'Migration20261130000000AccountRecovery', class: Migration20261130000000AccountRecovery }
]

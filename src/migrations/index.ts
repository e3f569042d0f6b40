import { Migration20261123000000CreateUsers } from './Migration20261123000000CreateUsers.js'

// Listed explicitly so the same list works from TypeScript sources and from the build.
export const migrationsList = [
  { name: 'Migration20261123000000CreateUsers', class: Migration20261123000000CreateUsers }
]

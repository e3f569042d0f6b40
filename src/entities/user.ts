import { randomUUID } from 'node:crypto'
import { EntitySchema } from '@mikro-orm/core'

export class User {
  id: string = randomUUID()
  email!: string
  name: string | null = null
  passwordHash!: string
  roles: string[] = []
  /** Set by a verification link or a password reset: both prove the address is the user's. */
  emailVerified = false
  createdAt: Date = new Date()
  updatedAt: Date = new Date()
}

export const UserEntity = new EntitySchema<User>({
  class: User,
  tableName: 'users',
  properties: {
    id: { type: 'uuid', primary: true },
    email: { type: 'string', length: 254, unique: 'users_email_unique' },
    name: { type: 'string', length: 200, nullable: true },
    passwordHash: { type: 'string', fieldName: 'password_hash', length: 255 },
    roles: { type: 'string[]', columnType: 'text[]' },
    emailVerified: { type: 'boolean', fieldName: 'email_verified', default: false },
    createdAt: { type: 'Date', fieldName: 'created_at', columnType: 'timestamptz' },
    updatedAt: { type: 'Date', fieldName: 'updated_at', columnType: 'timestamptz', onUpdate: () => new Date() }
  }
})

export function toUserBody (user: User) {
  return { id: user.id, email: user.email, name: user.name, email_verified: user.emailVerified, created_at: user.createdAt.toISOString() }
}

/** Emails are stored trimmed and lower-cased, so uniqueness and lookup are case-insensitive. */
export function normaliseEmail (email: string): string {
  return email.trim().toLowerCase()
}

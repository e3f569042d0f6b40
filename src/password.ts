import { hash, verify } from '@node-rs/argon2'

// OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
// algorithm 2 is Algorithm.Argon2id (a const enum, not importable under verbatimModuleSyntax).
const ARGON2_OPTIONS = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const

export function hashPassword (password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS)
}

export async function verifyPassword (passwordHash: string, password: string): Promise<boolean> {
  return verify(passwordHash, password, ARGON2_OPTIONS)
}

// Hashed once at boot; an unknown email is checked against it so it costs one full verify too.
let dummyHash: Promise<string> | undefined
export function dummyPasswordHash (): Promise<string> {
  dummyHash ??= hashPassword('tollgate-dummy-password-for-timing')
  return dummyHash
}

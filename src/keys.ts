import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export type AccessKey =
  | { alg: 'EdDSA', kid: string, privateKey: string, publicKey: string, publicJwk: PublicJwk }
  | { alg: 'HS256', kid: string, secret: string }

export interface PublicJwk { kty: string, crv: string, x: string, kid: string, alg: 'EdDSA', use: 'sig' }

/** An Ed25519 public key that verifies access tokens, with its RFC 7638 thumbprint as kid. */
export interface PublicKeyMaterial { kid: string, publicKey: string, publicJwk: PublicJwk }

export interface KeyMaterial {
  access: AccessKey
  /**
   * Keys that verify access tokens besides the signing key, and are published with it: the previous
   * key after a rotation (until its tokens expire), or the next one before it signs.
   */
  otherPublicKeys: PublicKeyMaterial[]
  refreshSecret: string
  /** Files written on this start (first start of the embedded default). */
  generated: string[]
  /** Key files under DATA_DIR in use, written on this start or an earlier one. */
  files: string[]
}

/** The settings keys come from (a Config has them all). */
export interface KeySettings {
  ACCESS_TOKEN_ALG: 'EdDSA' | 'HS256'
  ACCESS_TOKEN_PRIVATE_KEY?: string | undefined
  ACCESS_TOKEN_PUBLIC_KEYS?: string | undefined
  ACCESS_TOKEN_SECRET?: string | undefined
  REFRESH_TOKEN_SECRET?: string | undefined
  DATA_DIR: string
}

/**
 * Keys come from the configuration; whatever is missing is generated once and kept under
 * DATA_DIR with mode 0600, so tokens survive a restart of the embedded default.
 */
export async function loadKeys (config: KeySettings): Promise<KeyMaterial> {
  const generated: string[] = []
  const files: string[] = []
  const dir = join(config.DATA_DIR, 'keys')
  // A file found damaged (emptied by a crash, edited by hand) stops the start with its path.
  const keep = async <T>(file: string, make: () => string, use: (value: string) => T): Promise<T> => {
    const path = join(dir, file)
    files.push(path)
    const found = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
      return undefined
    })
    if (found !== undefined) {
      try {
        return use(found)
      } catch (err) {
        throw new Error(`${path}: ${(err as Error).message}; delete it to generate a new one (every token signed with it stops working)`)
      }
    }
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const value = make()
    try {
      await writeFile(path, value, { mode: 0o600, flag: 'wx' })
      generated.push(path)
      return use(value)
    } catch (err) {
      // Another process created it first: use theirs.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return use(await readFile(path, 'utf8'))
      throw err
    }
  }

  let access: AccessKey
  if (config.ACCESS_TOKEN_ALG === 'HS256') {
    const secret = config.ACCESS_TOKEN_SECRET as string // required by the config schema
    access = { alg: 'HS256', kid: createHash('sha256').update(`kid:${secret}`).digest('base64url').slice(0, 16), secret }
  } else {
    access = config.ACCESS_TOKEN_PRIVATE_KEY !== undefined
      ? ed25519Key(config.ACCESS_TOKEN_PRIVATE_KEY)
      : await keep('access-ed25519.pem', () => generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), ed25519Key)
  }
  const refreshSecret = config.REFRESH_TOKEN_SECRET ??
    await keep('refresh-hs256.secret', () => randomBytes(48).toString('base64url'), secret => {
      // As REFRESH_TOKEN_SECRET must be.
      if (secret.length < 32) throw new Error(`a secret of ${secret.length} characters, 32 or more are needed`)
      return secret
    })
  const otherPublicKeys = (parsePublicKeys(config.ACCESS_TOKEN_PUBLIC_KEYS ?? '') ?? [])
    .map(ed25519PublicKey)
    .filter((key, i, all) => key.kid !== access.kid && all.findIndex(k => k.kid === key.kid) === i)
  return { access, otherPublicKeys, refreshSecret, generated, files }
}

/** The JWKS (RFC 7517): public keys only, the signing key first; an HS256 deployment publishes none. */
export function publicJwks ({ access, otherPublicKeys }: KeyMaterial): { keys: PublicJwk[] } {
  return { keys: access.alg === 'EdDSA' ? [access.publicJwk, ...otherPublicKeys.map(key => key.publicJwk)] : [] }
}

const PUBLIC_KEY_PEM = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g

/** The Ed25519 public keys (SPKI PEM) in `value`, one after another; null if anything else is there. */
export function parsePublicKeys (value: string): KeyObject[] | null {
  if (value.replace(PUBLIC_KEY_PEM, '').trim() !== '') return null
  try {
    const keys = (value.match(PUBLIC_KEY_PEM) ?? []).map(pem => createPublicKey(pem))
    return keys.every(key => key.asymmetricKeyType === 'ed25519') ? keys : null
  } catch {
    return null
  }
}

function ed25519Key (privatePem: string): AccessKey {
  return { alg: 'EdDSA', privateKey: privatePem, ...ed25519PublicKey(createPublicKey(createPrivateKey(privatePem))) }
}

function ed25519PublicKey (publicKeyObject: KeyObject): PublicKeyMaterial {
  const jwk = publicKeyObject.export({ format: 'jwk' }) as { kty: string, crv: string, x: string }
  // RFC 7638 thumbprint: required members in lexicographic order, no whitespace.
  const kid = createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest('base64url')
  return {
    kid,
    publicKey: publicKeyObject.export({ format: 'pem', type: 'spki' }).toString(),
    publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid, alg: 'EdDSA', use: 'sig' }
  }
}

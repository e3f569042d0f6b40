// A typed client generated from the live OpenAPI document drives the whole flow: openapi-typescript
// turns GET /docs/json into schema.d.ts, the TypeScript compiler checks the checked-in client
// program (flow.ts, openapi-fetch, no casts) against it with `strict`, and then that same program
// runs against the listening app. A spec change that breaks clients fails the compile step here.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFile, readFile, symlink, writeFile } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import openapiTS, { astToString } from 'openapi-typescript'
import t from 'tap'
import ts from 'typescript'
import { build, tempDir } from '../helper.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const FLOW = fileURLToPath(new URL('flow.ts', import.meta.url))
const DOCS_TIMEOUT_MS = 10_000
// The flow is about fifteen requests; tsx startup and argon2 hashing dominate.
const FLOW_TIMEOUT_MS = 60_000

// What the program prints, one line per step, in order (register's line carries the user id).
const STEPS = [
  /^register [0-9a-f-]{36}$/, /^login$/, /^getCurrentUser$/, /^refresh json$/, /^refresh form$/,
  /^listSessions 2$/, /^revokeToken$/, /^introspect active$/, /^logout$/,
  /^getCurrentUser 401 INVALID_TOKEN$/, /^introspect inactive$/, /^flow complete$/
]

// strict and NodeNext as a user's project would have them, with the root tsconfig's other checks.
const COMPILER_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  noUncheckedIndexedAccess: true,
  verbatimModuleSyntax: true,
  isolatedModules: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts'],
  types: ['node'],
  typeRoots: [join(ROOT, 'node_modules', '@types')],
  forceConsistentCasingInFileNames: true,
  // The packages' own declarations are the packages' business (as in the root tsconfig); the
  // generated schema.d.ts is not a package's, so it is checked on its own below.
  skipLibCheck: true
}

/**
 * The compiler's diagnostics for `files` of `dir`, formatted as tsc prints them; empty when they
 * typecheck. Files outside `dir` (TypeScript's libs, the packages) do not change during the test,
 * so each is parsed once and shared by the programs.
 */
function typechecker (dir: string) {
  const host = ts.createCompilerHost(COMPILER_OPTIONS)
  const read = host.getSourceFile.bind(host)
  const parsed = new Map<string, ts.SourceFile | undefined>()
  host.getSourceFile = (fileName, ...rest) => {
    if (fileName.startsWith(dir + sep)) return read(fileName, ...rest)
    if (!parsed.has(fileName)) parsed.set(fileName, read(fileName, ...rest))
    return parsed.get(fileName)
  }
  return (files: string[]): string => {
    const program = ts.createProgram(files.map(file => join(dir, file)), COMPILER_OPTIONS, host)
    return ts.formatDiagnostics(ts.getPreEmitDiagnostics(program), {
      getCanonicalFileName: name => name,
      getCurrentDirectory: () => dir,
      getNewLine: () => '\n'
    })
  }
}

interface Run { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** Runs `node --import tsx flow.ts baseUrl` in `dir`, killed after FLOW_TIMEOUT_MS. */
function runFlow (dir: string, baseUrl: string, client: { id: string, secret: string }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'flow.ts', baseUrl], {
      cwd: dir,
      env: { ...process.env, INTROSPECTION_CLIENT_ID: client.id, INTROSPECTION_CLIENT_SECRET: client.secret },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: FLOW_TIMEOUT_MS,
      killSignal: 'SIGKILL'
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', chunk => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', chunk => { stderr += chunk })
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

t.test('a client generated from /docs/json typechecks and drives the whole flow', async t => {
  const client = { id: 'typed-client', secret: randomBytes(24).toString('base64url') }
  const app = await build(t, { config: { INTROSPECTION_CLIENTS: `${client.id}:${client.secret}` } })
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 })

  // Over HTTP, as a user's generator would fetch it.
  const res = await fetch(`${baseUrl}/docs/json`, { signal: AbortSignal.timeout(DOCS_TIMEOUT_MS) })
  t.equal(res.status, 200, 'GET /docs/json')
  const document = await res.text()

  // A directory of its own: the generated types, a copy of the program, and `type: module` so that
  // both the compiler (NodeNext) and tsx treat flow.ts as ESM; node_modules links to the repo's.
  const dir = await tempDir(t)
  const schema = astToString(await openapiTS(document, { silent: true }))
  await writeFile(join(dir, 'schema.d.ts'), schema)
  await copyFile(FLOW, join(dir, 'flow.ts'))
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
  t.match(schema, /export interface paths \{/, 'openapi-typescript generated `paths`')

  const typecheck = typechecker(dir)
  const errors = typecheck(['flow.ts'])
  t.equal(errors, '', 'flow.ts typechecks against the generated types (strict, NodeNext)', { diagnostics: errors })
  // skipLibCheck skips every .d.ts, so the generated one is checked as a source file of its own.
  await copyFile(join(dir, 'schema.d.ts'), join(dir, 'schema-check.ts'))
  t.equal(typecheck(['schema-check.ts']), '', 'the generated schema.d.ts is itself valid TypeScript')
  // Running a program that does not compile would only blur the compiler's diagnostics.
  if (errors) return

  // Proof that the check bites: the same program against types where one response field and one
  // enum value are renamed, as an incompatible spec change would rename them, must not compile.
  const broken = schema
    .replace(/(\n\s+)access_token: string;/g, '$1accessToken: string;')
    .replace('"INVALID_TOKEN"', '"TOKEN_INVALID"')
  t.not(broken, schema, 'the mutation applies')
  await writeFile(join(dir, 'schema.d.ts'), broken)
  const brokenErrors = typecheck(['flow.ts'])
  t.match(brokenErrors, /flow\.ts\(\d+,\d+\): error TS(?:2339|2551): Property 'access_token' does not exist/, 'a renamed response field is a compile error')
  t.match(brokenErrors, /flow\.ts\(\d+,\d+\): error TS2367: This comparison appears to be unintentional .*"INVALID_TOKEN"/, 'a renamed enum value is a compile error')
  await writeFile(join(dir, 'schema.d.ts'), schema)

  const run = await runFlow(dir, baseUrl, client)
  t.equal(run.signal, null, `the flow finished within ${FLOW_TIMEOUT_MS} ms`)
  t.equal(run.code, 0, 'the flow completed', { stderr: run.stderr })
  const lines = run.stdout.trim().split('\n')
  t.equal(lines.length, STEPS.length, 'every step ran', { stdout: run.stdout })
  STEPS.forEach((step, i) => t.match(lines[i], step, `step ${i + 1}`))
  // The program ran is the program checked in.
  t.equal(await readFile(join(dir, 'flow.ts'), 'utf8'), await readFile(FLOW, 'utf8'))
})

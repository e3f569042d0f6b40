import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'
import { tempDir } from './helper.js'

// The layering of the package, read from the import statements of src/, plugins/ and routes/:
// the domain (src/) knows nothing of Fastify, routes never reach into plugins, no import cycles,
// and every fastify-plugin wrapper declares Fastify 5 and a tollgate-* name.

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const LAYERS = ['src', 'plugins', 'routes']
/** The programs of src/: they build and run a Fastify app, so they may import it. */
const ENTRY_POINTS = new Set(['src/server.ts', 'src/migrate.ts'])
const FASTIFY = /^(?:fastify|fastify-plugin)(?:\/|$)|^@fastify\//

interface FpCall {
  line: number
  /** What is wrong with its metadata; none when it declares `fastify: '5.x'` and a tollgate name. */
  problem?: string
}

interface Module {
  /** Relative to the root, with forward slashes: `src/options.ts`. */
  path: string
  /** Every module specifier: static imports (`import type` too), re-exports, `import('…')`, `require('…')`. */
  specifiers: string[]
  /** The analysed modules it imports. */
  deps: string[]
  fpCalls: FpCall[]
}

const posix = (path: string) => path.split(sep).join('/')

function sourceFiles (root: string): string[] {
  return LAYERS
    .filter(layer => existsSync(join(root, layer)))
    .flatMap(layer => (readdirSync(join(root, layer), { recursive: true }) as string[]).map(file => posix(join(layer, file))))
    .filter(file => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .sort()
}

/** The package's own name and the files its `exports` point at, so `tollgate/verify` resolves like `../plugins/verify.js`. */
function selfReferences (root: string): { name?: string, exports: Record<string, string> } {
  const manifest = join(root, 'package.json')
  if (!existsSync(manifest)) return { exports: {} }
  const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string, exports?: Record<string, string | { default?: string }> }
  const exports: Record<string, string> = {}
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    const file = typeof target === 'string' ? target : target.default
    if (file) exports[subpath] = file.replace(/^\.\/(?:dist\/)?/, '')
  }
  return { name: pkg.name, exports }
}

/** The analysed module a specifier names (NodeNext: `./x.js` is `./x.ts`), if any. */
function resolveSpecifier (root: string, from: string, specifier: string, known: Set<string>, self: ReturnType<typeof selfReferences>): string | undefined {
  let target: string
  if (specifier.startsWith('.')) {
    target = posix(relative(root, resolve(root, dirname(from), specifier)))
  } else if (self.name && (specifier === self.name || specifier.startsWith(`${self.name}/`))) {
    const exported = self.exports[`.${specifier.slice(self.name.length)}`]
    if (!exported) return undefined
    target = exported
  } else {
    return undefined
  }
  const candidates = [target.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts'), target, `${target}.ts`, `${target}/index.ts`]
  return candidates.find(candidate => known.has(candidate))
}

const stringOf = (node: ts.Node | undefined): string | undefined =>
  node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : undefined

function readModule (root: string, path: string): Omit<Module, 'deps'> {
  const source = ts.createSourceFile(path, readFileSync(join(root, path), 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const specifiers: string[] = []
  /** The local names of fastify-plugin's function (`fp` by convention). */
  const fpNames = new Set<string>()
  const calls: ts.CallExpression[] = []

  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      const specifier = stringOf(node.moduleSpecifier)
      if (specifier) specifiers.push(specifier)
      if (specifier === 'fastify-plugin' && ts.isImportDeclaration(node) && node.importClause) {
        const { name, namedBindings } = node.importClause
        if (name) fpNames.add(name.text)
        if (namedBindings && ts.isNamedImports(namedBindings)) {
          for (const element of namedBindings.elements) {
            if (['default', 'fastifyPlugin'].includes((element.propertyName ?? element.name).text)) fpNames.add(element.name.text)
          }
        }
      }
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const specifier = stringOf(node.moduleReference.expression)
      if (specifier) specifiers.push(specifier)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      // `typeof import('…')` and `import('…').Type` in type positions.
      const specifier = stringOf(node.argument.literal)
      if (specifier) specifiers.push(specifier)
    } else if (ts.isCallExpression(node)) {
      const isImport = node.expression.kind === ts.SyntaxKind.ImportKeyword
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require'
      if (isImport || isRequire) {
        const specifier = stringOf(node.arguments[0])
        specifiers.push(specifier ?? `<${isImport ? 'import' : 'require'} of a computed specifier at line ${lineOf(source, node)}>`)
      }
      calls.push(node)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)

  const fpCalls = calls
    .filter(call => ts.isIdentifier(call.expression) && fpNames.has(call.expression.text))
    .map(call => ({ line: lineOf(source, call), problem: metadataProblem(call) }))
  return { path, specifiers, fpCalls }
}

const lineOf = (source: ts.SourceFile, node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1

function metadataProblem (call: ts.CallExpression): string | undefined {
  const meta = call.arguments[1]
  if (!meta) return 'no metadata (fastify: \'5.x\' and a tollgate name)'
  if (!ts.isObjectLiteralExpression(meta)) return 'metadata is not an object literal, so it cannot be checked'
  const value = (key: string) => {
    const property = meta.properties.find(p => ts.isPropertyAssignment(p) && p.name.getText() === key)
    return property && ts.isPropertyAssignment(property) ? stringOf(property.initializer) : undefined
  }
  const problems = []
  const fastify = value('fastify')
  if (fastify !== '5.x') problems.push(`fastify: ${fastify === undefined ? 'missing' : `'${fastify}'`} (expected '5.x')`)
  const name = value('name')
  if (!name?.startsWith('tollgate')) problems.push(`name: ${name === undefined ? 'missing' : `'${name}'`} (expected tollgate…)`)
  return problems.length > 0 ? problems.join(', ') : undefined
}

/** Every .ts module under src/, plugins/ and routes/ of `root`, by path. */
function analyse (root: string): Map<string, Module> {
  const files = sourceFiles(root)
  const known = new Set(files)
  const self = selfReferences(root)
  const modules = new Map<string, Module>()
  for (const path of files) {
    const { specifiers, fpCalls } = readModule(root, path)
    const deps = [...new Set(specifiers.map(s => resolveSpecifier(root, path, s, known, self)).filter((d): d is string => d !== undefined))]
    modules.set(path, { path, specifiers, deps, fpCalls })
  }
  return modules
}

/** (a) Modules of src/ (but its entry points) that import Fastify, directly or through other modules. */
function fastifyInDomain (modules: Map<string, Module>): string[] {
  const offences: string[] = []
  for (const module of modules.values()) {
    if (!module.path.startsWith('src/') || ENTRY_POINTS.has(module.path)) continue
    const direct = module.specifiers.filter(s => FASTIFY.test(s))
    if (direct.length > 0) {
      offences.push(`${module.path} imports ${direct.map(s => `'${s}'`).join(', ')}`)
      continue
    }
    // Breadth first, so the chain reported is a shortest one.
    const parent = new Map<string, string>([[module.path, '']])
    const queue = [module.path]
    for (let current = queue.shift(); current !== undefined; current = queue.shift()) {
      const found = current !== module.path && modules.get(current)?.specifiers.find(s => FASTIFY.test(s))
      if (found) {
        const chain = [current]
        for (let p = parent.get(current); p; p = parent.get(p)) chain.unshift(p)
        offences.push(`${chain.join(' → ')} → '${found}'`)
        break
      }
      for (const dep of modules.get(current)?.deps ?? []) {
        if (!parent.has(dep)) { parent.set(dep, current); queue.push(dep) }
      }
    }
  }
  return offences
}

/** (b) Modules of routes/ that import a module of plugins/. */
function routesOnPlugins (modules: Map<string, Module>): string[] {
  return [...modules.values()]
    .filter(module => module.path.startsWith('routes/'))
    .flatMap(module => module.deps.filter(dep => dep.startsWith('plugins/')).map(dep => `${module.path} imports ${dep}`))
}

/** (c) Each import cycle (a strongly connected component, Tarjan), as one cycle through it. */
function importCycles (modules: Map<string, Module>): string[] {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const components: string[][] = []

  const connect = (v: string) => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of modules.get(v)?.deps ?? []) {
      if (!index.has(w)) {
        connect(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number))
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = []
      let w: string | undefined
      do {
        w = stack.pop() as string
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      const selfImport = modules.get(v)?.deps.includes(v)
      if (component.length > 1 || selfImport) components.push(component.sort())
    }
  }
  for (const path of modules.keys()) if (!index.has(path)) connect(path)

  return components.map(component => {
    // A shortest way from the component's first module back to itself, inside the component.
    const start = component[0] as string
    const members = new Set(component)
    const parent = new Map<string, string>()
    const queue = [start]
    for (let current = queue.shift(); current !== undefined; current = queue.shift()) {
      for (const dep of modules.get(current)?.deps ?? []) {
        if (!members.has(dep) || parent.has(dep)) continue
        parent.set(dep, current)
        if (dep === start) break
        queue.push(dep)
      }
      if (parent.has(start)) break
    }
    const cycle = [start]
    for (let p = parent.get(start); p !== undefined && p !== start; p = parent.get(p)) cycle.unshift(p)
    cycle.unshift(start)
    return `${cycle.join(' → ')}${component.length > cycle.length - 1 ? ` (cycle among ${component.join(', ')})` : ''}`
  })
}

/** (d) fp() calls under plugins/ without `fastify: '5.x'` and a name starting with tollgate. */
function badPluginMetadata (modules: Map<string, Module>): string[] {
  return [...modules.values()]
    .filter(module => module.path.startsWith('plugins/'))
    .flatMap(module => module.fpCalls.filter(call => call.problem).map(call => `${module.path}:${call.line} ${call.problem}`))
}

const report = (what: string, offences: string[]) => offences.length > 0 ? `${what}:\n  ${offences.join('\n  ')}` : what

t.test('the layering of this package', async t => {
  const modules = analyse(ROOT)

  // The reading works at all: a broken reader would find nothing and pass everything.
  t.ok(modules.size >= 30, `${modules.size} modules read`)
  t.ok(modules.get('plugins/tollgate.ts')?.deps.includes('src/options.ts'), 'plugins/tollgate.ts → src/options.ts')
  t.ok(modules.get('plugins/tollgate.ts')?.deps.includes('routes/auth/index.ts'), 'plugins/tollgate.ts → routes/auth/index.ts')
  t.ok(modules.get('src/server.ts')?.specifiers.includes('fastify'), 'src/server.ts imports fastify (allowed: an entry point)')
  const fpCalls = [...modules.values()].filter(m => m.path.startsWith('plugins/')).flatMap(m => m.fpCalls)
  t.ok(fpCalls.length >= 6, `${fpCalls.length} fp() calls found under plugins/`)

  const domain = fastifyInDomain(modules)
  t.same(domain, [], report('src/ (but src/server.ts and src/migrate.ts) must not import fastify, @fastify/* or fastify-plugin', domain))
  const routes = routesOnPlugins(modules)
  t.same(routes, [], report('routes/ must not import from plugins/', routes))
  const cycles = importCycles(modules)
  t.same(cycles, [], report('import cycles (import type included)', cycles))
  const metadata = badPluginMetadata(modules)
  t.same(metadata, [], report('every fp() under plugins/ must pass fastify: \'5.x\' and a name starting with tollgate', metadata))
})

/** Writes a small package: path → source. */
function writeTree (root: string, files: Record<string, string>) {
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), source)
  }
}

t.test('each check names the modules that break it', async t => {
  const root = await tempDir(t)
  writeTree(root, {
    'package.json': JSON.stringify({ name: 'fake', exports: { './verify': { default: './dist/plugins/verify.js' } } }),
    // (a) Direct: a type import, a re-export, a dynamic import, a require. Allowed in the entry points.
    'src/typed.ts': 'import type { FastifyInstance } from \'fastify\'\nexport type App = FastifyInstance\n',
    'src/reexport.ts': 'export { default } from \'@fastify/cors\'\n',
    'src/lazy.ts': 'export const load = () => import(\'fastify-plugin\')\n',
    'src/required.ts': 'import { createRequire } from \'node:module\'\nconst require = createRequire(import.meta.url)\nexport const f = require(\'fastify/lib/errors.js\')\n',
    'src/server.ts': 'import Fastify from \'fastify\'\nexport const app = Fastify()\n',
    'src/migrate.ts': 'import type { FastifyInstance } from \'fastify\'\nexport type A = FastifyInstance\n',
    // (a) Through another module; and nothing in comments or strings counts.
    'src/indirect.ts': 'import { handler } from \'../plugins/ok.js\'\nexport const h = handler\n',
    'src/clean.ts': '// import fastify from \'fastify\'\nexport const text = "import(\'fastify\')"\n',
    // (b) A relative import and the package's own export of plugins/.
    'routes/a/index.ts': 'import { handler } from \'../../plugins/ok.js\'\nexport default handler\n',
    'routes/b.ts': 'import type verify from \'fake/verify\'\nexport type V = typeof verify\n',
    // (c) A cycle through an `import type`, and a self-import.
    'src/cycle-a.ts': 'import type { B } from \'./cycle-b.js\'\nexport interface A { b: B }\n',
    'src/cycle-b.ts': 'import { type A } from \'./cycle-a.js\'\nexport interface B { a?: A }\n',
    'src/self.ts': 'export * from \'./self.js\'\n',
    // (d) Wrong or missing metadata; `fp` under another name too.
    'plugins/ok.ts': 'import fp from \'fastify-plugin\'\nexport const handler = () => {}\nexport default fp(async () => {}, { name: \'tollgate-ok\', fastify: \'5.x\' })\n',
    'plugins/verify.ts': 'import fp from \'fastify-plugin\'\nexport default fp(async () => {}, { name: \'verify\', fastify: \'4.x\' })\n',
    'plugins/bare.ts': 'import wrap from \'fastify-plugin\'\nexport const a = wrap(async () => {})\nconst meta = { name: \'tollgate-x\', fastify: \'5.x\' }\nexport const b = wrap(async () => {}, meta)\nexport const c = wrap(async () => {}, { name: \'tollgate-c\' })\n'
  })
  const modules = analyse(root)

  t.same(fastifyInDomain(modules), [
    'src/indirect.ts → plugins/ok.ts → \'fastify-plugin\'',
    'src/lazy.ts imports \'fastify-plugin\'',
    'src/reexport.ts imports \'@fastify/cors\'',
    'src/required.ts imports \'fastify/lib/errors.js\'',
    'src/typed.ts imports \'fastify\''
  ])
  t.same(routesOnPlugins(modules), ['routes/a/index.ts imports plugins/ok.ts', 'routes/b.ts imports plugins/verify.ts'])
  t.same(importCycles(modules).sort(), ['src/cycle-a.ts → src/cycle-b.ts → src/cycle-a.ts', 'src/self.ts → src/self.ts'])
  t.same(badPluginMetadata(modules), [
    'plugins/bare.ts:2 no metadata (fastify: \'5.x\' and a tollgate name)',
    'plugins/bare.ts:4 metadata is not an object literal, so it cannot be checked',
    'plugins/bare.ts:5 fastify: missing (expected \'5.x\')',
    'plugins/verify.ts:2 fastify: \'4.x\' (expected \'5.x\'), name: \'verify\' (expected tollgate…)'
  ])
})

import { constants } from 'node:fs'
import { access, mkdtemp } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import puppeteer, { type ElementHandle, type Page } from 'puppeteer-core'
import t, { type Test } from 'tap'
import { build, registerAndLogin } from '../helper.js'

// Swagger UI at /docs, driven in a real headless Chromium as a user drives it: the operations render,
// "Authorize" takes the bearer access token, and "Try it out" → "Execute" on GET /users/me answers 200
// with the user. Chromium is Debian's (`apt-get install chromium`; .ci/run installs it), driven by
// puppeteer-core, which downloads no browser. In CI a missing Chromium fails this test, elsewhere it skips.

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const IN_CI = process.env.CI === 'true'
/** The bound of every wait: launch, navigation, selectors, and each DevTools call (protocolTimeout). */
const WAIT = 15_000

// The page's DOM as far as the functions evaluated in it use it (the project compiles without the DOM lib).
interface PageElement {
  readonly textContent: string | null
  getAttribute (name: string): string | null
  querySelector (selector: string): PageElement | null
  querySelectorAll (selector: string): ArrayLike<PageElement>
}
declare const document: PageElement & {
  addEventListener (type: 'securitypolicyviolation', listener: (event: { effectiveDirective: string, blockedURI: string, sample: string }) => void): void
}
interface CspLog { __cspViolations?: string[] }

async function chromiumMissing (path: string): Promise<string | null> {
  try {
    await access(path, constants.X_OK)
    return null
  } catch (err) {
    return `no Chromium executable at ${path} (${(err as NodeJS.ErrnoException).code}): install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH`
  }
}

const missing = await chromiumMissing(CHROMIUM)

/** Waits (bounded) for the operation block whose method and path are these, whatever its tag or operationId. */
async function operationBlock (page: Page, method: string, path: string): Promise<ElementHandle> {
  const handle = await page.waitForFunction((method: string, path: string) => {
    const blocks = document.querySelectorAll('.opblock')
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i] as PageElement
      const summaryMethod = block.querySelector('.opblock-summary-method')?.textContent?.trim().toLowerCase()
      const summaryPath = block.querySelector('.opblock-summary-path, .opblock-summary-path__deprecated')
      // The path is shown with <wbr> breaks between segments; data-path holds it whole.
      const shownPath = (summaryPath?.getAttribute('data-path') ?? summaryPath?.textContent ?? '').replace(/\u200b/g, '').trim()
      if (summaryMethod === method && shownPath === path) return block
    }
    return null
  }, { timeout: WAIT }, method.toLowerCase(), path)
  const element = handle.asElement()
  if (!element) throw new Error(`no operation block for ${method} ${path}`)
  return element as ElementHandle
}

async function text (element: ElementHandle): Promise<string> {
  return element.evaluate(node => (node as unknown as PageElement).textContent ?? '')
}

const isCspMessage = (message: string) => /content[- ]security[- ]policy|refused to (load|execute|apply|connect|frame|evaluate|create)/i.test(message)

t.test('Swagger UI at /docs in headless Chromium', {
  skip: missing && !IN_CI ? `${missing} (skipped outside CI; CI fails instead)` : false
}, async t => {
  if (missing) {
    t.fail(`${missing}. CI must run the Swagger UI browser test: .ci/run installs Chromium when /usr/bin/chromium is missing`)
    return
  }
  const started = performance.now()
  const lap = (t: Test, step: string) => t.comment(`${step} after ${Math.round(performance.now() - started)} ms`)

  const app = await build(t)
  const user = await registerAndLogin(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const origin = `http://127.0.0.1:${port}`
  lap(t, 'app listening')

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true, // --headless=new
    // As root in a container Chromium runs only without its sandbox; no name resolves, so nothing leaves 127.0.0.1.
    args: ['--no-sandbox', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'],
    timeout: WAIT,
    protocolTimeout: 2 * WAIT
  })
  t.teardown(() => browser.close())
  t.comment(`browser: ${await browser.version()}`)
  lap(t, 'browser launched')

  const page = await browser.newPage()
  page.setDefaultTimeout(WAIT)
  page.setDefaultNavigationTimeout(WAIT)
  await page.setViewport({ width: 1280, height: 900 })

  // Everything the page says and every CSP violation it reports, for the assertions at the end.
  const consoleMessages: string[] = []
  const pageErrors: string[] = []
  const offHost: string[] = []
  const apiRequests: Array<{ url: string, authorization: string | undefined }> = []
  page.on('console', message => { consoleMessages.push(`${message.type()}: ${message.text()}`) })
  page.on('pageerror', err => { pageErrors.push(err instanceof Error ? err.message : String(err)) })
  await page.evaluateOnNewDocument(() => {
    const log: string[] = (globalThis as CspLog).__cspViolations = []
    document.addEventListener('securitypolicyviolation', event => { log.push(`${event.effectiveDirective} blocked ${event.blockedURI}: ${event.sample}`) })
  })
  // No network but the app: anything else is aborted and recorded.
  await page.setRequestInterception(true)
  page.on('request', request => {
    const url = new URL(request.url())
    if (url.protocol === 'data:' || url.protocol === 'blob:' || url.hostname === '127.0.0.1') {
      if (url.pathname === '/users/me') apiRequests.push({ url: url.href, authorization: request.headers().authorization })
      request.continue().catch(() => {})
    } else {
      offHost.push(request.url())
      request.abort('blockedbyclient').catch(() => {})
    }
  })

  const response = await page.goto(`${origin}/docs`, { waitUntil: 'load' })
  t.equal(response?.status(), 200, '/docs loads')
  t.comment(`/docs CSP: ${response?.headers()['content-security-policy']}`)

  t.test('the page renders the operations', async t => {
    const title = await page.waitForSelector('.swagger-ui .information-container .title', { visible: true })
    t.match(await text(title!), /Tollgate/, 'the API title is shown')
    for (const [method, path] of [['POST', '/auth/login'], ['GET', '/users/me']] as const) {
      const block = await operationBlock(page, method, path)
      t.ok(await block.isVisible(), `the ${method} ${path} operation block is visible`)
    }
    t.ok(await page.$('.swagger-ui button.btn.authorize'), 'an Authorize button is shown')
    lap(t, 'operations rendered')
  })

  t.test('"Authorize" accepts the bearer access token', async t => {
    const authorize = await page.waitForSelector('.swagger-ui .auth-wrapper button.btn.authorize', { visible: true })
    t.match(await text(authorize!), /Authorize/, 'the top bar has an Authorize button')
    await authorize!.click()
    const input = await page.waitForSelector('.modal-ux .auth-container input#auth-bearer-value', { visible: true })
    t.match(await text((await page.$('.modal-ux'))!), /bearerAuth.*\(http, Bearer\)/s, 'the dialog offers bearerAuth')
    // Pasted, as a user would: one input event (typing it key by key takes seconds of re-rendering).
    await input!.focus()
    await page.keyboard.sendCharacter(user.tokens.access_token)
    await (await page.waitForSelector('.modal-ux .auth-btn-wrapper button.authorize', { visible: true }))!.click()
    // Authorized: the dialog hides the value and offers Logout instead of Authorize.
    await page.waitForFunction(() => /Authorized/.test(document.querySelector('.modal-ux .auth-container')?.textContent ?? ''), { timeout: WAIT })
    await page.waitForSelector('.modal-ux .auth-btn-wrapper button[aria-label="Remove authorization"]', { visible: true })
    t.match(await text((await page.$('.modal-ux .auth-container'))!), /Authorized.*\*{6}/s, 'the dialog says Authorized and masks the token')
    await (await page.$('.modal-ux button.btn-done'))!.click()
    await page.waitForSelector('.modal-ux', { hidden: true })
    t.ok(await page.$('.swagger-ui .auth-wrapper button.btn.authorize.locked'), 'the Authorize button shows a locked padlock')
    const block = await operationBlock(page, 'GET', '/users/me')
    t.ok(await block.$('button.authorization__btn[aria-label="authorization button locked"]'), 'GET /users/me shows a locked padlock')
    lap(t, 'authorized')
  })

  t.test('"Try it out" → "Execute" on GET /users/me shows 200 and the user', async t => {
    const block = await operationBlock(page, 'GET', '/users/me')
    await (await block.$('.opblock-summary-control'))!.click()
    await (await block.waitForSelector('button.try-out__btn', { visible: true }))!.click()
    await (await block.waitForSelector('button.btn.execute', { visible: true }))!.click()
    const status = await block.waitForSelector('.live-responses-table tbody .response-col_status', { visible: true })
    t.equal((await text(status!)).trim(), '200', 'the response code shown is 200')
    const body = await block.waitForSelector('.live-responses-table tbody .response-col_description .microlight', { visible: true })
    const shown = await text(body!)
    t.match(shown, user.email, 'the response body shown has the user\'s email')
    t.match(shown, user.userId, 'and the user\'s id')
    t.match(await text((await block.$('.request-url'))!), `${origin}/users/me`, 'the request URL shown is the app\'s')
    t.same(apiRequests.map(r => r.authorization), [`Bearer ${user.tokens.access_token}`], 'one request to /users/me, with the bearer token')
    lap(t, 'executed')

    const screenshot = process.env.SWAGGER_UI_SCREENSHOT || join(await mkdtemp(join(tmpdir(), 'tollgate-swagger-ui-')), 'swagger-ui.png')
    await block.scrollIntoView()
    await page.screenshot({ path: screenshot, fullPage: true })
    t.comment(`screenshot: ${screenshot}`)
  })

  t.test('the page runs within its Content-Security-Policy and the app', async t => {
    const violations = await page.evaluate(() => (globalThis as CspLog).__cspViolations ?? [])
    t.same(violations, [], 'no securitypolicyviolation event')
    t.same(consoleMessages.filter(isCspMessage), [], 'no console message about the Content-Security-Policy')
    t.same(pageErrors.filter(isCspMessage), [], 'no page error about the Content-Security-Policy')
    t.same(offHost, [], 'no request leaves 127.0.0.1')
    for (const message of consoleMessages) t.comment(`console ${message}`)
    for (const message of pageErrors) t.comment(`page error: ${message}`)
  })
})

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import t from 'tap'
import { startHarness } from './helpers/harness.ts'

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
]

t.test('the bull-board dashboard at /admin/queues loads in headless Chromium and shows every queue', async (t) => {
  const h = await startHarness(t)
  await h.createTask({ type: 'echo', payload: {}, delayMs: 60_000 })
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })

  const profile = await mkdtemp(join(tmpdir(), 'tasklane-chromium-'))
  // A fresh profile directory for this run (Playwright's way of passing --user-data-dir).
  const browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS })
  t.teardown(async () => {
    await browser.close()
    await rm(profile, { recursive: true, force: true })
  })
  const page = browser.pages()[0] ?? await browser.newPage()
  const failed: string[] = []
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`) })

  const res = await page.goto(`${base}/admin/queues`, { waitUntil: 'load', timeout: 30_000 })
  t.equal(res?.status(), 200)
  // The page is a client-side app: the queue names appear once it has read bull-board's API.
  for (const name of h.deps.queues.names()) {
    await page.getByText(name, { exact: true }).first().waitFor({ timeout: 20_000 })
    t.pass(`queue "${name}" is shown`)
  }
  t.match(await page.title(), /Tasklane/)
  t.same(failed, [], 'no request of the page failed')
})

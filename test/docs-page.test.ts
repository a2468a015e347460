import { readFileSync } from 'node:fs'
import t from 'tap'
import { startHarness } from './helpers/harness.ts'

t.test("the OpenAPI version is package.json's; /docs is titled Tasklane API and reads /openapi.json", async (t) => {
  const h = await startHarness(t)
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  const doc = (await h.app.inject({ url: '/openapi.json' })).json()
  t.equal(doc.info.version, version)
  const page = await h.app.inject({ url: '/docs/' })
  t.equal(page.statusCode, 200)
  t.match(page.body, '<title>Tasklane API</title>')
  const init = await h.app.inject({ url: '/docs/static/swagger-initializer.js' })
  t.equal(init.statusCode, 200)
  t.match(init.body, /"urls":\[\{"url":"\/openapi\.json","name":"Tasklane API"\}\]/, 'the page loads /openapi.json')
})

import { execFile } from 'node:child_process'
import { mkdtemp, rm, symlink, writeFile, copyFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import openapiTS, { type OpenAPI3 } from 'openapi-typescript'
import t from 'tap'
import { startHarness } from './helpers/harness.ts'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const TENANT_KEY = 'generated-client-key-0123'
const ADMIN_KEY = 'generated-client-admin-0123'

t.test('a client generated from /openapi.json type-checks and works against the API without a hand fix', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `gen:${TENANT_KEY}`, TASKLANE_ADMIN_KEY: ADMIN_KEY } })
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })
  const doc = await (await fetch(`${base}/openapi.json`)).json() as OpenAPI3

  const dir = await mkdtemp(join(tmpdir(), 'tasklane-client-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules'))
  await writeFile(join(dir, 'schema.ts'), await openapiTS(doc))
  await copyFile(join(root, 'test/fixtures/generated-client/program.ts'), join(dir, 'program.ts'))
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'es2023', module: 'nodenext', moduleResolution: 'nodenext',
      allowImportingTsExtensions: true, verbatimModuleSyntax: true, noUncheckedIndexedAccess: true, types: ['node'],
    },
    files: ['program.ts', 'schema.ts'],
  }))

  const tsc = join(root, 'node_modules/.bin/tsc')
  const checked = await run(tsc, ['-p', dir]).then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
  t.equal(checked, '', 'the generated types and the program type-check, strict')

  const { stdout } = await run(process.execPath, [join(dir, 'program.ts'), base, TENANT_KEY, ADMIN_KEY])
  const out = JSON.parse(stdout)
  t.match(out, {
    created: 202, location: `/v1/tasks/${out.id}`, status: 'queued', missing: 404, missingCode: 'TASK_NOT_FOUND',
    badLimit: 400, badLimitPath: '/querystring/limit', cancelled: 'cancelled',
    asTenant: 401, paused: true, resumed: false,
  })
  t.ok(out.listed >= 1, 'the list without a limit')
  t.same(out.priorities, ['normal', 'normal', 'normal'], 'type defaults as their enum')
})

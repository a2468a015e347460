import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const MIGRATIONS = join(ROOT, 'services/core/db/migrations')
const BIN = join(ROOT, 'node_modules/.bin/drizzle-kit')

function drizzleKit (...args: string[]) {
  const result = spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  return { status: result.status, output: `${result.stdout}${result.stderr}` }
}

t.test('drizzle-kit check: the migration snapshots are consistent', async (t) => {
  const check = drizzleKit('check')
  t.equal(check.status, 0, check.output)
  t.match(check.output, /Everything's fine/)
})

t.test('the Drizzle schema and the migrations never drift: generating from the schema adds nothing', async (t) => {
  // Generates into a copy (drizzle-kit wants a path relative to the project), so a drift shows as a new file there and never touches the tree.
  const out = mkdtempSync(join(tmpdir(), 'tasklane-drift-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  cpSync(MIGRATIONS, out, { recursive: true })
  const before = readdirSync(out).sort()
  const generate = drizzleKit('generate', '--dialect', 'postgresql', '--schema', './services/core/db/schema.ts', '--out', relative(ROOT, out), '--name', 'drift')
  t.equal(generate.status, 0, generate.output)
  t.same(readdirSync(out).sort(), before, `no new migration: ${generate.output}`)
  t.match(generate.output, /No schema changes/)
})

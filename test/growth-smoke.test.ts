import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// The growth drill of `make soak-growth`, a few seconds of it: its figures mean nothing here,
// but every phase runs and the backlog of finished tasks past retention is purged.
t.test('make soak-growth --smoke: purges the seeded backlog under load and reports sizes', async (t) => {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const run = spawnSync(process.execPath, ['bench/growth-drill.ts', '--smoke'], { cwd: root, encoding: 'utf8', timeout: 240_000 })
  t.equal(run.status, 0, run.stderr)
  const line = run.stdout.trim().split('\n').at(-1)!
  const result = JSON.parse(line)
  t.ok(result.purge.purged >= result.purge.seeded, `every seeded task was purged (${result.purge.purged} of ${result.purge.seeded})`)
  t.equal(result.purge.createErrors, 0, 'no create failed during the purge')
  t.ok(result.steady.samples.length >= 2, 'sizes sampled through the steady run')
  t.match(run.stdout, /Create p99: [0-9.]+ ms before the purge, [0-9.]+ ms during it/)
})

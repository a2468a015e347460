import t from 'tap'
import { judgeFlat, judgePlateau } from '../bench/soak-verdict.ts'
import { runScript } from './helpers/run-script.ts'
import { serviceEndpoints } from './helpers/services.ts'

t.test('the soak\'s flatness verdict: a trend after warm-up, not one noisy sample', async (t) => {
  const series = (values: number[]) => ({ name: 'x', unit: 'MiB', values })
  t.equal(judgeFlat(series([50, 120, 121, 119, 122, 120, 118, 121]), 1, 15).flat, true, 'growth during warm-up only: flat')
  t.equal(judgeFlat(series([120, 121, 150, 119, 120, 122, 121, 120]), 0, 15).flat, true, 'one spike (a GC, an autovacuum): flat')
  const leak = judgeFlat(series([100, 104, 108, 112, 116, 120, 124, 128]), 1, 15)
  t.equal(leak.flat, false, 'a steady rise of 4% a sample: growing')
  t.ok(leak.growthPercent > 15 && leak.growthPercent < 30, `growth ${leak.growthPercent}% over the judged window`)
  t.equal(judgeFlat(series([0, 0, 0]), 0, 15).flat, true, 'all zero: flat')
  t.equal(judgeFlat(series([0, 0, 5]), 0, 15).flat, false, 'from zero up: growing')
})

t.test('a high-water mark is judged on its level: a step that then holds is flat, a steady rise is not', async (t) => {
  const series = (values: number[]) => ({ name: 'x', unit: 'MiB', values })
  // Sizes of the soak's index-churn simulation, a sample every 20 s: one step when the gap between two vacuums was the longest.
  const stepped = [0.62, 0.62, 0.62, 0.62, 0.64, 0.82, 0.82, 0.82, 0.82, 0.82, 0.82, 0.82, 0.82, 0.82, 0.82]
  t.equal(judgeFlat(series(stepped), 3, 15).flat, false, 'the trend after warm-up calls the step growth')
  t.equal(judgePlateau(series(stepped), 15).flat, true, 'the last third is level with the middle one: flat')
  t.equal(judgePlateau(series([100, 104, 108, 112, 116, 120, 124, 128, 132, 136, 140, 144]), 5).flat, false, 'a steady rise still rises in the last third')
  t.equal(judgePlateau(series([1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2]), 15).flat, false, 'a step in the last third: growing')
})

// A short run so the soak cannot rot; flatness over 20 s means nothing and is not judged
// (that is `make soak`), but every sample, figure and accepted task is.
t.test('node bench/soak.ts --smoke: samples every figure, and every task it created completed', async (t) => {
  const { databaseUrl, redisUrl } = await serviceEndpoints()
  const { code, stdout, stderr } = await runScript('bench/soak.ts', ['--smoke', '--duration', '12s'], { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl })
  t.comment(stdout)
  t.equal(code, 0, `the soak exits 0\n${stderr}`)
  const samples = stdout.split('\n').filter((l) => /^\[\d\d:\d\d\] api rss \d+ MiB \| worker rss \d+ MiB \| redis memory \d+ MiB \| tasks rows \d+ \| tasks table [\d.]+ MiB \| tasks heap [\d.]+ MiB \| tasks indexes [\d.]+ MiB \| attempts [\d.]+ MiB \| tasks dead tuples \d+ \| undeleted peak \d+ \| backlog \d+ \| accepted \d+ deleted \d+$/.test(l))
  t.ok(samples.length >= 5, `${samples.length} samples with every figure`)
  const tasks = /tasks: accepted (\d+), completed and deleted (\d+), not completed (\d+)/.exec(stdout)
  t.ok(tasks && Number(tasks[1]) >= 400, `at least 400 tasks accepted (${tasks?.[1]})`)
  t.equal(tasks?.[2], tasks?.[1], 'every accepted task completed and was collected')
  t.match(stdout, /^(flat {3}|GROWING) api rss: /m, 'a verdict for the API\'s RSS')
  t.match(stdout, /^(flat {3}|GROWING) tasks table: /m, 'a verdict for the tasks table')
  for (const part of ['tasks heap', 'tasks indexes', 'attempts']) t.match(stdout, new RegExp(`^(flat {3}|GROWING) ${part}: `, 'm'), `a verdict for ${part}`)
  t.match(stdout, /verdict: every task accepted and completed/)
})

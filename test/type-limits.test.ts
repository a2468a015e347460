import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { bearer } from './helpers/auth.ts'
import { startHarness, type Harness } from './helpers/harness.ts'

const KEY = 'tenant-a-key-for-type-limits-1'
const A = bearer(KEY)
const CHILD = fileURLToPath(new URL('./fixtures/limits-worker-child.ts', import.meta.url))

async function setup (t: { teardown: (fn: () => unknown) => void }, type: object, holdMs: number) {
  const h = await startHarness(t, { env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY}` } })
  const url = await h.app.listen({ host: '127.0.0.1', port: 0 })
  const put = await h.app.inject({ method: 'PUT', url: '/v1/task-types/limited', headers: A, payload: { executor: { kind: 'pull' }, ...type } })
  if (put.statusCode !== 201) throw new Error(put.body)
  const children: ChildProcess[] = []
  const spawnWorkers = () => {
    for (const id of ['w-1', 'w-2']) {
      children.push(spawn(process.execPath, [CHILD], {
        env: { ...process.env, TASKLANE_URL: url, TASKLANE_API_KEY: KEY, WORKER_ID: id, HOLD_MS: String(holdMs) }, stdio: 'ignore',
      }))
    }
  }
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null) { c.kill('SIGKILL'); await once(c, 'exit') }
  })
  return { h, spawnWorkers }
}

async function createMany (h: Harness, n: number): Promise<string[]> {
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', headers: A,
    payload: { tasks: Array.from({ length: n }, (_, i) => ({ type: 'limited', payload: { i } })) } })
  return (res.json() as { items: { id: string }[] }).items.map((i) => i.id)
}

async function allDone (h: Harness, ids: string[]): Promise<boolean> {
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where id = any(${ids}::uuid[]) and status = 'completed'`
  return row!.n === ids.length
}

t.test('a type\'s concurrency holds across two worker processes (sampled running counts)', async (t) => {
  const { h, spawnWorkers } = await setup(t, { concurrency: 3 }, 200)
  const ids = await createMany(h, 30)
  spawnWorkers()
  let maxRunning = 0
  let maxActive = 0
  const queue = h.deps.queues.get('acme/limited')
  for (let i = 0; i < 2_000 && !(await allDone(h, ids)); i++) {
    const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where type = 'limited' and status = 'running'`
    maxRunning = Math.max(maxRunning, row!.n)
    maxActive = Math.max(maxActive, (await queue.getJobCounts('active')).active ?? 0)
    await sleep(20)
  }
  t.ok(await allDone(h, ids), 'every task completed')
  t.ok(maxRunning <= 3, `at most 3 running at once in Postgres (saw ${maxRunning})`)
  t.ok(maxActive <= 3, `at most 3 active in BullMQ (saw ${maxActive})`)
  t.ok(maxRunning >= 2, 'the limit, not the workers, was what held them back')
  const workers = await h.sql<{ worker_id: string }[]>`select distinct a.worker_id from task_attempts a join tasks t on t.id = a.task_id where t.type = 'limited'`
  t.same(workers.map((w) => w.worker_id).sort(), ['w-1', 'w-2'], 'both processes took part')
})

t.test('a type\'s rateLimit holds across two worker processes (starts per window)', async (t) => {
  const perMs = 1_000
  const max = 4
  const { h, spawnWorkers } = await setup(t, { rateLimit: { max, perMs } }, 1)
  const ids = await createMany(h, 12)
  spawnWorkers()
  for (let i = 0; i < 1_000 && !(await allDone(h, ids)); i++) await sleep(50)
  t.ok(await allDone(h, ids), 'every task completed')
  // BullMQ's limiter counts in fixed windows that open with the first job taken, so any
  // sliding window of perMs sees at most two windows' worth; each fixed window at most max.
  const starts = (await h.sql<{ at: string }[]>`
    select a.started_at as at from task_attempts a join tasks t on t.id = a.task_id where t.type = 'limited' order by a.started_at`)
    .map((r) => new Date(r.at).getTime())
  let worst = 0
  for (const [i, start] of starts.entries()) worst = Math.max(worst, starts.slice(i).filter((s) => s < start + perMs).length)
  t.ok(worst <= 2 * max, `at most ${2 * max} starts in any ${perMs} ms (saw ${worst})`)
  const bursts = new Set(starts.map((s) => Math.floor((s - starts[0]!) / perMs))).size
  t.ok(bursts >= Math.ceil(12 / (2 * max)), `the 12 starts were spread over several windows (${bursts})`)
})

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createWorker } from '../clients/typescript/src/index.ts'
import { bearer } from './helpers/auth.ts'
import { startHarness, waitFor } from './helpers/harness.ts'

const KEY = 'tenant-a-key-for-pull-client-1'
const ENV = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY}` }
const A = bearer(KEY)

async function setup (t: { teardown: (fn: () => unknown) => void }, type: object = { executor: { kind: 'pull' } }) {
  const h = await startHarness(t, { env: ENV })
  const address = await h.app.listen({ host: '127.0.0.1', port: 0 })
  await h.app.inject({ method: 'PUT', url: '/v1/task-types/job', headers: A, payload: type })
  const create = async (body: object) => {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'job', ...body } })
    return res.json() as { id: string }
  }
  return { h, url: address, create }
}

t.test('a pull worker SIGKILLed mid-task loses nothing: the lease expires and another worker completes the task, once', async (t) => {
  const { h, url, create } = await setup(t, { executor: { kind: 'pull' }, defaults: { backoff: { type: 'fixed', delayMs: 100 } } })
  const task = await create({ payload: { n: 1 } })
  const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/pull-worker-child.ts', import.meta.url))], {
    env: { ...process.env, TASKLANE_URL: url, TASKLANE_API_KEY: KEY, VISIBILITY_MS: '1500' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => { out += c })
  await waitFor(async () => out.includes(`started ${task.id}`), 20_000)
  child.kill('SIGKILL')
  await once(child, 'exit')

  let runs = 0
  const survivor = createWorker({
    url, apiKey: KEY, concurrency: 2, visibilityMs: 5_000, waitMs: 500, workerId: 'survivor',
    handlers: { job: async (leased) => { runs++; return { by: 'survivor', n: (leased.payload as { n: number }).n } } },
  })
  survivor.start()
  t.teardown(() => survivor.stop(1_000))
  const done = await waitFor(async () => {
    const x = (await h.app.inject({ url: `/v1/tasks/${task.id}`, headers: A })).json()
    return x.status === 'completed' && x
  }, 20_000)
  t.same(done.result, { by: 'survivor', n: 1 })
  t.equal(runs, 1, 'the survivor ran it once')
  const attempts = await h.sql<{ outcome: string, worker_id: string }[]>`
    select outcome, worker_id from task_attempts where task_id = ${task.id} order by attempt`
  t.same(attempts.map((a) => [a.worker_id, a.outcome]), [['child', 'lost'], ['survivor', 'completed']], 'recorded once')
})

t.test('cancel reaches a running pull handler through its next heartbeat', async (t) => {
  const { h, url, create } = await setup(t)
  let heartbeatsAfterCancel = 0
  let cancelledAt: number | undefined
  // Counts the heartbeats the API receives once the cancel is recorded.
  h.app.server.on('request', (req: { url?: string }) => {
    if (cancelledAt !== undefined && req.url?.endsWith('/heartbeat')) heartbeatsAfterCancel++
  })
  let started = false
  let reason: unknown
  const worker = createWorker({
    url, apiKey: KEY, concurrency: 1, visibilityMs: 10_000, heartbeatMs: 500, waitMs: 500,
    handlers: {
      job: async (_task, ctx) => {
        started = true
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
        reason = ctx.signal.reason
        return 'ignored'
      },
    },
  })
  worker.start()
  t.teardown(() => worker.stop(1_000))
  const task = await create({})
  await waitFor(async () => started, 10_000)
  const res = await h.app.inject({ method: 'POST', url: `/v1/tasks/${task.id}/cancel`, headers: A })
  cancelledAt = Date.now()
  t.equal(res.json().status, 'cancelled')
  await waitFor(async () => reason !== undefined, 10_000)
  t.equal(reason, 'cancelled')
  t.ok(heartbeatsAfterCancel <= 1, 'the first heartbeat after the cancel told the handler (one heartbeat interval)')
  await waitFor(async () => worker.active === 0, 5_000)
  const attempts = await h.sql<{ outcome: string }[]>`select outcome from task_attempts where task_id = ${task.id}`
  t.same(attempts.map((a) => a.outcome), ['cancelled'], 'the handler\'s late answer changed nothing')
})

t.test('progress, and a graceful stop gives back work that does not finish in time', async (t) => {
  const { h, url, create } = await setup(t, { executor: { kind: 'pull' }, defaults: { backoff: { type: 'fixed', delayMs: 1 } } })
  const quick = await create({ payload: { quick: true } })
  const slow = await create({ payload: { quick: false } })
  const worker = createWorker({
    url, apiKey: KEY, concurrency: 2, waitMs: 500,
    handlers: {
      job: async (task, ctx) => {
        await ctx.progress(50)
        if ((task.payload as { quick: boolean }).quick) return { ok: true }
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
        throw new Error('aborted')
      },
    },
  })
  worker.start()
  await waitFor(async () => {
    const [row] = await h.sql<{ progress: unknown }[]>`select progress from tasks where id = ${slow.id}`
    return row?.progress === 50
  }, 10_000)
  await worker.stop(300)
  const get = async (id: string) => (await h.app.inject({ url: `/v1/tasks/${id}`, headers: A })).json()
  t.equal((await get(quick.id)).status, 'completed')
  const given = await get(slow.id)
  t.equal(given.status, 'queued', 'given back, to be run again')
  t.match(given.error, { code: 'WORKER_SHUTDOWN' })
})

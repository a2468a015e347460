import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { bearer } from './helpers/auth.ts'
import { startHarness, waitFor } from './helpers/harness.ts'

const run = promisify(execFile)
const KEY = 'tenant-a-key-for-python-00001'
const A = bearer(KEY)
const SCRIPT = fileURLToPath(new URL('../examples/python/pull_worker.py', import.meta.url))

t.test('the standard-library Python example registers its type, leases, heartbeats and completes tasks', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY}` } })
  const url = await h.app.listen({ host: '127.0.0.1', port: 0 })
  const worker = run('python3', [SCRIPT], {
    env: { ...process.env, TASKLANE_URL: url, TASKLANE_API_KEY: KEY, MAX_TASKS: '3', WORKER_ID: 'py-1' },
    timeout: 60_000,
  })
  // The worker registers the type first; tasks can be created once it exists.
  await waitFor(async () => (await h.app.inject({ url: '/v1/task-types/word-count', headers: A })).statusCode === 200, 20_000)
  const texts = ['one two three', 'tasklane', 'a b c d e']
  const ids: string[] = []
  for (const text of texts) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'word-count', payload: { text } } })
    t.equal(res.statusCode, 202)
    ids.push(res.json().id)
  }
  const bad = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'word-count', payload: { txt: 'x' } } })
  t.equal(bad.statusCode, 400, 'the schema the Python worker registered is enforced')
  const { stdout } = await worker
  t.match(stdout, /"registered": "word-count"/)
  for (const [i, id] of ids.entries()) {
    const task = (await h.app.inject({ url: `/v1/tasks/${id}`, headers: A })).json()
    t.equal(task.status, 'completed')
    t.same(task.result, { words: texts[i]!.split(' ').length })
    t.equal(task.progress, 10, 'progress came with a heartbeat')
  }
  const attempts = await h.sql<{ worker_id: string, outcome: string }[]>`
    select worker_id, outcome from task_attempts where task_id = any(${ids}::uuid[])`
  t.same([...new Set(attempts.map((a) => `${a.worker_id}:${a.outcome}`))], ['py-1:completed'])
  t.equal(attempts.length, 3)
})

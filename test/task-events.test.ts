import { createParser, type EventSourceMessage } from 'eventsource-parser'
import t from 'tap'
import { buildServer } from '../services/api/build-server.ts'
import { openApiDeps } from '../services/api/open-deps.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { testLogger } from './helpers/test-config.ts'

type Read = { events: EventSourceMessage[], comments: string[], status: number, type: string | null }

/** Reads an SSE stream with a real HTTP client until the server ends it (or the time runs out). */
async function readStream (url: string, timeoutMs = 20_000, onEvent?: (e: EventSourceMessage) => void): Promise<Read> {
  const events: EventSourceMessage[] = []
  const comments: string[] = []
  const parser = createParser({
    onEvent: (e) => { events.push(e); onEvent?.(e) },
    onComment: (c) => { comments.push(c) },
  })
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.timeout(timeoutMs) })
  if (res.body) {
    const decoder = new TextDecoder()
    for await (const chunk of res.body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))
  }
  return { events, comments, status: res.status, type: res.headers.get('content-type') }
}

/** A second API process on the same database, Redis and prefix: another replica. */
async function secondReplica (t: { teardown: (fn: () => unknown) => void }, h: Harness): Promise<string> {
  const deps = openApiDeps(h.config, testLogger(h.config, 'tasklane-api-2'))
  const app = await buildServer(deps, testLogger(h.config, 'tasklane-api-2'))
  t.teardown(async () => { await app.close(); await deps.close() })
  return app.listen({ port: 0, host: '127.0.0.1' })
}

const data = (e: EventSourceMessage) => JSON.parse(e.data)

t.test('a replica that did not create the task streams its status and progress to the end', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_SSE_HEARTBEAT_MS: '150' } })
  const base = await secondReplica(t, h)
  // Progress at 25, 50, 75, 100. No worker runs it until the stream has shown it queued.
  const task = await h.createTask({ type: 'sleep', payload: { ms: 800, progressSteps: 4 } })
  let sawQueued!: () => void
  const queuedShown = new Promise<void>((resolve) => { sawQueued = resolve })
  const reading = readStream(`${base}/v1/tasks/${task.id}/events`, 60_000, (e) => {
    if (e.event === 'status' && data(e).status === 'queued') sawQueued()
  })
  await Promise.race([queuedShown, reading])
  await h.spawnWorker()
  const read = await reading

  t.equal(read.status, 200)
  t.match(read.type, /^text\/event-stream/)
  const statuses = read.events.filter((e) => e.event === 'status').map((e) => data(e).status)
  t.same(statuses, ['queued', 'running', 'completed'], 'every status, in order, ending with the terminal one')
  const progress = read.events.filter((e) => e.event === 'progress').map((e) => data(e).progress)
  t.same(progress, [25, 50, 75, 100], 'each progress report, as it happened')
  const last = data(read.events.at(-1)!)
  t.match(last, { id: task.id, status: 'completed', progress: 100, result: { sleptMs: Number } }, 'the final event is the stored task')
  t.ok(read.comments.some((c) => c.trim() === 'heartbeat'), 'a heartbeat comment on the idle stream')
  const ids = read.events.map((e) => Number(e.id))
  t.ok(ids.every((id, i) => Number.isInteger(id) && (i === 0 || id >= ids[i - 1]!)), `event ids are the task's updatedAt, never going back: ${ids.join(', ')}`)
  t.equal(ids.at(-1), Date.parse(last.updatedAt), 'the last id is the stored task\'s updatedAt')
  t.notOk(read.events.some((e) => e.event === 'status' && 'payload' in data(e)), 'status frames leave the payload out')
  t.equal((await h.getTask(task.id)).progress, 100, 'progress is kept on the task')
})

t.test('a task already terminal gets its final event at once; an unknown task is a 404 problem', async (t) => {
  const h = await startHarness(t, { worker: true })
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })
  const task = await h.createTask({ type: 'echo', payload: { x: 1 } })
  await h.waitForTerminal([task.id])
  const read = await readStream(`${base}/v1/tasks/${task.id}/events`, 5_000)
  t.equal(read.events.length, 1)
  t.match(data(read.events[0]!), { status: 'completed', result: { x: 1 } })
  const missing = await fetch(`${base}/v1/tasks/01a2077c-d81a-7550-bad6-90a87ef6a8fc/events`)
  t.equal(missing.status, 404)
  t.match(missing.headers.get('content-type'), /application\/problem\+json/)
})

t.test('a stream follows a cancel to the end, and a client that leaves frees its subscription', async (t) => {
  const h = await startHarness(t, { worker: true })
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })
  const task = await h.createTask({ type: 'sleep', payload: { ms: 60_000 } })
  await waitFor(async () => (await h.getTask(task.id)).status === 'running')
  let cancelled = false
  const read = await readStream(`${base}/v1/tasks/${task.id}/events`, 10_000, (e) => {
    if (!cancelled && e.event === 'status' && data(e).status === 'running') {
      cancelled = true
      void h.app.inject({ method: 'POST', url: `/v1/tasks/${task.id}/cancel` })
    }
  })
  t.same(read.events.map((e) => data(e).status), ['running', 'cancelled'])
  await waitFor(async () => h.deps.taskEvents.size() === 0, 5_000)
  t.equal(h.deps.taskEvents.size(), 0, 'no subscription left after the stream ended')

  const other = await h.createTask({ type: 'sleep', payload: { ms: 60_000 } })
  const controller = new AbortController()
  const res = await fetch(`${base}/v1/tasks/${other.id}/events`, { signal: controller.signal })
  t.equal(res.status, 200)
  await waitFor(async () => h.deps.taskEvents.size() === 1, 5_000)
  controller.abort()
  await waitFor(async () => h.deps.taskEvents.size() === 0, 5_000)
  t.pass('the subscription went with the client')
})

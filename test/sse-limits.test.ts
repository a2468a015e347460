import { connect, type Socket } from 'node:net'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import t from 'tap'
import { createTaskEventPublisher } from '../services/core/tasks/task-events.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { testLogger } from './helpers/test-config.ts'

const KEY_A = 'tenant-a-key-0123456789'
const KEY_B = 'tenant-b-key-0123456789'
// These tests are about streams: a busy test host must not turn their requests into load-shedding 503s.
const STEADY = { TASKLANE_MAX_EVENT_LOOP_DELAY_MS: '0' }

async function metric (h: Harness, name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = h.deps.metrics.registry.getSingleMetric(name)
  if (!found) throw new Error(`no metric ${name}`)
  const { values } = await found.get()
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0)
}

/** Reads a stream until it ends or `stopWhen` says so; returns its events. */
async function readEvents (url: string, headers: Record<string, string> = {}, stopWhen?: (events: EventSourceMessage[]) => boolean) {
  const events: EventSourceMessage[] = []
  const controller = new AbortController()
  const parser = createParser({ onEvent: (e) => { events.push(e); if (stopWhen?.(events)) controller.abort() } })
  const res = await fetch(url, { headers, signal: controller.signal })
  if (res.status !== 200) return { status: res.status, headers: res.headers, events, text: await res.text() }
  try {
    if (res.body) for await (const chunk of res.body) parser.feed(Buffer.from(chunk as Uint8Array).toString('utf8'))
  } catch (err) {
    if (!controller.signal.aborted) throw err
  }
  return { status: res.status, headers: res.headers, events, text: '' }
}

t.test('ten streams that never read, on a task with a 200 KiB payload that changes often, are cut: the API holds a bounded number of bytes', async (t) => {
  const cap = 64 * 1024
  const h = await startHarness(t, { env: { ...STEADY, TASKLANE_SSE_MAX_BUFFER_BYTES: String(cap) } })
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })
  const task = await h.createTask({ type: 'echo', payload: { blob: 'x'.repeat(200 * 1024) } })

  // The status frames leave the payload out: a reading client's first frame is small.
  const first = await readEvents(`${base}/v1/tasks/${task.id}/events`, {}, (events) => events.length === 1)
  t.equal(first.events[0]!.event, 'status')
  t.ok(first.events[0]!.data.length < 2048, `a status frame is ${first.events[0]!.data.length} bytes, without the payload`)
  t.notOk('payload' in JSON.parse(first.events[0]!.data), 'no payload in a status frame')
  await waitFor(async () => (await metric(h, 'tasklane_sse_streams')) === 0)

  const { port } = new URL(base)
  const sockets: Socket[] = []
  for (let i = 0; i < 10; i++) {
    const socket = connect(Number(port), '127.0.0.1')
    socket.on('error', () => {}) // the server cuts these connections
    socket.write(`GET /v1/tasks/${task.id}/events HTTP/1.1\r\nhost: localhost\r\naccept: text/event-stream\r\n\r\n`)
    socket.pause() // and never reads
    sockets.push(socket)
  }
  t.teardown(() => { for (const s of sockets) s.destroy() })
  await waitFor(async () => (await metric(h, 'tasklane_sse_streams')) === 10)
  await waitFor(async () => h.deps.taskEvents.size() === 1)

  // Changes as fast as Redis carries them: status flips with a new attempt each, and progress
  // reports of 16 KiB, about 10 MB per stream in all if nothing were cut.
  const publisher = createTaskEventPublisher({ redis: h.deps.redis, prefix: h.config.TASKLANE_QUEUE_PREFIX, log: testLogger(h.config, 'test-publisher') })
  let maxHeld = 0
  const sample = setInterval(() => { void metric(h, 'tasklane_sse_buffered_bytes').then((v) => { maxHeld = Math.max(maxHeld, v) }) }, 5)
  const rssBefore = process.memoryUsage().rss
  const bigProgress = { note: 'y'.repeat(16 * 1024) }
  const start = Date.now()
  for (let i = 1; i <= 600; i++) {
    const updatedAt = new Date(start + i).toISOString()
    await publisher.publish(task.id, i % 3 === 0
      ? { kind: 'status', status: i % 2 === 0 ? 'running' : 'queued', attempts: i, updatedAt }
      : { kind: 'progress', progress: bigProgress, updatedAt })
  }
  await waitFor(async () => (await metric(h, 'tasklane_sse_streams_closed_total', { reason: 'slow' })) === 10, 15_000)
  clearInterval(sample)
  maxHeld = Math.max(maxHeld, await metric(h, 'tasklane_sse_buffered_bytes'))
  t.comment(`most bytes held by the ten streams at once: ${maxHeld}; RSS before ${rssBefore >> 20} MiB, after ${process.memoryUsage().rss >> 20} MiB`)

  t.equal(await metric(h, 'tasklane_sse_streams_closed_total', { reason: 'slow' }), 10, 'every stream that did not read was cut')
  t.ok(maxHeld <= 10 * (cap + 20 * 1024), `the streams never held more than their caps (${maxHeld} bytes)`)
  t.equal(await metric(h, 'tasklane_sse_streams'), 0, 'no stream left open')
  t.equal(await metric(h, 'tasklane_sse_buffered_bytes'), 0, 'nothing held once they are cut')
  await waitFor(async () => h.deps.taskEvents.size() === 0)
  t.pass('the task\'s subscription went with the streams')
})

t.test('a client that reconnects with Last-Event-ID gets what changed since, and 204 after the end', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })
  const task = await h.createTask({ type: 'sleep', payload: { ms: 60_000 }, delayMs: 60_000 })
  const url = `${base}/v1/tasks/${task.id}/events`

  const first = await readEvents(url, {}, (events) => events.length === 1)
  t.equal(first.status, 200, first.text)
  const firstId = first.events[0]!.id!
  t.match(firstId, /^[0-9]+$/, 'the event id is a number')
  t.equal(JSON.parse(first.events[0]!.data).status, 'queued')

  // Unchanged since the id: nothing is repeated; the stream waits for the next change.
  const quiet = readEvents(url, { 'last-event-id': firstId }, (events) => events.length === 1)
  await waitFor(async () => (await metric(h, 'tasklane_sse_streams')) === 1)
  const cancel = await h.app.inject({ method: 'POST', url: `/v1/tasks/${task.id}/cancel` })
  t.equal(cancel.statusCode, 202)
  const resumed = await quiet
  t.same(resumed.events.map((e) => JSON.parse(e.data).status), ['cancelled'], 'the first event after resuming is the change')

  // Missed the change while away: resuming with the old id gets it from Postgres, then the end.
  const missed = await readEvents(url, { 'last-event-id': firstId })
  t.same(missed.events.map((e) => JSON.parse(e.data).status), ['cancelled'])
  const lastId = missed.events[0]!.id!
  t.ok(Number(lastId) > Number(firstId), 'ids grow with the task\'s updatedAt')

  const after = await fetch(url, { headers: { 'last-event-id': lastId } })
  t.equal(after.status, 204, 'resuming after the terminal event: 204, so EventSource stops reconnecting')
})

t.test('streams are capped per tenant (429) and per process (503), both with Retry-After', async (t) => {
  const h = await startHarness(t, {
    env: {
      ...STEADY,
      TASKLANE_AUTH: 'required',
      TASKLANE_API_KEYS: `a:${KEY_A},b:${KEY_B}`,
      TASKLANE_SSE_MAX_STREAMS_PER_TENANT: '2',
      TASKLANE_SSE_MAX_STREAMS: '3',
    },
  })
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })
  const create = async (key: string) => {
    const res = await fetch(`${base}/v1/tasks`, {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'sleep', payload: { ms: 1 }, delayMs: 60_000 }),
    })
    return ((await res.json()) as { id: string }).id
  }
  const [taskA, taskB] = [await create(KEY_A), await create(KEY_B)]
  const open: AbortController[] = []
  t.teardown(() => { for (const c of open) c.abort() })
  const openStream = async (key: string, id: string) => {
    const controller = new AbortController()
    const res = await fetch(`${base}/v1/tasks/${id}/events`, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal })
    if (res.status === 200) open.push(controller)
    return res
  }

  t.equal((await openStream(KEY_A, taskA)).status, 200)
  t.equal((await openStream(KEY_A, taskA)).status, 200)
  const third = await openStream(KEY_A, taskA)
  t.equal(third.status, 429, 'a third stream for tenant a')
  t.ok(Number(third.headers.get('retry-after')) > 0, 'with Retry-After')
  t.match(await third.json(), { code: 'TOO_MANY_STREAMS', type: 'urn:tasklane:problem:too-many-streams' })

  t.equal((await openStream(KEY_B, taskB)).status, 200, 'tenant b has its own allowance')
  const full = await openStream(KEY_B, taskB)
  t.equal(full.status, 503, 'the process is at its cap')
  t.ok(Number(full.headers.get('retry-after')) > 0, 'with Retry-After')
  t.match(await full.json(), { code: 'OVERLOADED' })
  t.equal(await metric(h, 'tasklane_sse_streams_refused_total', { limit: 'tenant' }), 1)
  t.equal(await metric(h, 'tasklane_sse_streams_refused_total', { limit: 'process' }), 1)

  open.shift()!.abort()
  await waitFor(async () => (await metric(h, 'tasklane_sse_streams')) === 2)
  t.equal((await openStream(KEY_B, taskB)).status, 200, 'a slot freed by a client that left is taken again')
})

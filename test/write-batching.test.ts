import t from 'tap'
import { retryOnOutage } from '../services/core/retry-on-outage.ts'
import { createTransitionBatchStatements } from '../services/core/tasks/transition-batch-statements.ts'
import { createTaskTransitions } from '../services/core/tasks/transitions.ts'
import { createWriteBatcher } from '../services/core/write-batcher.ts'
import { startHarness } from './helpers/harness.ts'

// The worker's claims and finishes and the API's inserts share multi-row statements. These
// tests pin that coalescing keeps each call's own answer and the single-row conditions.

t.test('the batcher coalesces concurrent calls, keeps same-key calls apart, and isolates a failing item', async (t) => {
  const batches: number[][] = []
  const write = createWriteBatcher({
    run: async (items: number[]) => {
      batches.push(items)
      if (items.includes(13) && items.length > 1) throw new Error('the whole statement failed')
      if (items.includes(13)) throw new Error('thirteen is bad')
      return items.map((i) => i * 2)
    },
    key: (i) => String(i % 100),
    maxInFlight: 1,
  })
  const results = await Promise.allSettled([1, 2, 3, 101, 13, 4].map(write))
  t.same(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    [2, 4, 6, 202, 'thirteen is bad', 8], 'every caller gets its own answer; only the bad item fails')
  t.same(batches[0], [1, 2, 3, 13, 4], 'one statement for the calls that arrived together')
  t.ok(batches.some((b) => b.length === 1 && b[0] === 101), '101 shares a key with 1: it waited for a later batch')
  t.ok(batches.some((b) => b.length === 1 && b[0] === 13), 'the failed batch was retried item by item')
})

t.test('a batch that never answers fails its callers after the timeout and frees its slot', async (t) => {
  let calls = 0
  const write = createWriteBatcher({
    run: (items: number[]) => (++calls === 1 ? new Promise<number[]>(() => {}) : Promise.resolve(items.map((i) => i + 1))),
    maxInFlight: 1,
    timeoutMs: 100,
  })
  await t.rejects(write(1), { code: 'WRITE_TIMEOUT' })
  t.equal(await write(2), 3, 'the next write goes out: the stuck batch gave up its slot')
})

t.test('a timed-out batch keeps its keys until its statement really ends: the same row is never written twice at once', async (t) => {
  let release: (() => void) | undefined
  const running = new Set<number>()
  const overlaps: number[] = []
  const write = createWriteBatcher({
    run: async (items: number[]) => {
      for (const i of items) { if (running.has(i)) overlaps.push(i); running.add(i) }
      if (release === undefined) await new Promise<void>((resolve) => { release = resolve })
      for (const i of items) running.delete(i)
      return items
    },
    key: (i) => String(i),
    maxInFlight: 1,
    timeoutMs: 100,
  })
  await t.rejects(write(1), { code: 'WRITE_TIMEOUT' })
  const retried = write(1) // what retryOnOutage does after the timeout
  t.equal(await write(2), 2, 'another row goes out meanwhile')
  let settled = false
  void retried.then(() => { settled = true }, () => { settled = true })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(settled, false, 'the retry of row 1 waits while the stuck statement still holds it')
  await t.rejects(retried, { code: 'WRITE_TIMEOUT' }, 'and fails as unanswered once it has waited the timeout, never sent')
  release!()
  t.equal(await write(1), 1, 'once the statement has ended, the row is written again')
  t.same(overlaps, [], 'no two statements ever held row 1 at once')
})

t.test('a write waiting for a row whose statement never ends fails with WRITE_TIMEOUT within the timeout, and is never sent', async (t) => {
  const sent: number[][] = []
  const write = createWriteBatcher({
    run: (items: number[]) => {
      sent.push(items)
      return items.includes(1) ? new Promise<number[]>(() => {}) : Promise.resolve(items)
    },
    key: (i) => String(i % 100),
    timeoutMs: 100,
  })
  await t.rejects(write(1), { code: 'WRITE_TIMEOUT' })
  const started = Date.now()
  // Both wait for row 1, held for ever; each retried write fails in time and goes nowhere.
  for (const item of [101, 1]) {
    const outcome = await Promise.race([
      write(item).then(() => 'answered', (err: { code?: string }) => err.code),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 1 s'), 1_000)),
    ])
    t.equal(outcome, 'WRITE_TIMEOUT', `the write of ${item} fails as unanswered`)
  }
  t.ok(Date.now() - started < 500, `within the timeout each (${Date.now() - started} ms for both)`)
  t.same(sent, [[1]], 'neither went out beside the statement that holds the row')
  t.equal(await write(2), 2, 'other rows are written meanwhile')
})

t.test('writes that expire while waiting no longer count against maxPending', async (t) => {
  const write = createWriteBatcher({
    run: (items: string[]) => (items.includes('held') ? new Promise<string[]>(() => {}) : Promise.resolve(items)),
    key: (i) => i.split(':')[0]!,
    maxPending: 2,
    timeoutMs: 100,
  })
  await t.rejects(write('held'), { code: 'WRITE_TIMEOUT' })
  const waiting = [write('held:1'), write('held:2')]
  await t.rejects(() => write('other'), { statusCode: 503, code: 'TASKLANE_UNAVAILABLE' }, 'two rows wait: the queue is full')
  await Promise.all(waiting.map((w) => t.rejects(w, { code: 'WRITE_TIMEOUT' })))
  t.same(await Promise.all([write('a'), write('b')]), ['a', 'b'], 'accepted again once the waiting rows expired')
})

t.test('past maxPending waiting rows a write is refused at once with a 503, and accepted again once they drain', async (t) => {
  let release!: () => void
  const stuck = new Promise<void>((resolve) => { release = resolve })
  const write = createWriteBatcher({
    run: async (items: number[]) => { await stuck; return items },
    maxInFlight: 1,
    maxBatch: 1,
    maxPending: 10,
  })
  const first = write(0) // on the wire, holding the only slot
  await new Promise((resolve) => setImmediate(resolve))
  const waiting = Array.from({ length: 10 }, (_, i) => write(i + 1))
  await t.rejects(write(99), { statusCode: 503, code: 'TASKLANE_UNAVAILABLE' }, 'the eleventh waiting row is refused')
  release()
  t.same(await Promise.all([first, ...waiting]), Array.from({ length: 11 }, (_, i) => i), 'every accepted write got its answer')
  t.equal(await write(100), 100, 'accepted again once the backlog drained')
})

t.test('claims and finishes of many tasks at once each record their own outcome, exactly once', async (t) => {
  const h = await startHarness(t)
  const transitions = createTaskTransitions(h.sql, { maxLostAttempts: 3 })
  const claim = (id: string, workerId: string) => transitions.claim({ taskId: id, workerId, leaseId: crypto.randomUUID() }).then((c) => c?.task)
  const ids: string[] = []
  for (let i = 0; i < 40; i++) ids.push((await h.createTask({ type: 'echo', payload: { i } })).id)

  const claimed = await Promise.all(ids.map((id) => claim(id, 'w1')))
  t.ok(claimed.every((row, i) => row?.id === ids[i] && row?.attempts === 1 && row?.status === 'running'), 'every claim answered with its own row')
  t.ok(claimed.every((row) => row?.runAt instanceof Date && row?.startedAt instanceof Date), 'timestamps are Dates, as in TaskRow')

  // Half complete, a quarter fail, a quarter are finished by a stale attempt number (a late write).
  const outcomes = await Promise.all(ids.map((id, i) =>
    i % 4 === 3
      ? transitions.complete(id, 7, { result: { late: true }, durationMs: 1 })
      : i % 4 === 2
        ? transitions.fail(id, 1, { error: { message: 'boom', code: 'E' }, durationMs: 2 })
        : transitions.complete(id, 1, { result: { i }, durationMs: 3 })))
  t.same(outcomes, ids.map((_, i) => i % 4 !== 3), 'a stale attempt is told no; the others yes')

  const rows = await h.sql<{ id: string, status: string, result: unknown, error: unknown }[]>`
    select id, status, result, error from tasks where id = any(${ids}::uuid[])`
  const byId = new Map(rows.map((r) => [r.id, r]))
  ids.forEach((id, i) => {
    const row = byId.get(id)!
    if (i % 4 === 3) t.match(row, { status: 'running', result: null }, 'the stale finish changed nothing')
    else if (i % 4 === 2) t.match(row, { status: 'failed', result: null, error: { message: 'boom' } })
    else t.match(row, { status: 'completed', result: { i }, error: null })
  })
  const attempts = await h.sql<{ outcome: string, n: number }[]>`
    select outcome, count(*)::int as n from task_attempts where task_id = any(${ids}::uuid[]) group by outcome order by outcome`
  t.same(attempts, [{ outcome: 'completed', n: 20 }, { outcome: 'failed', n: 10 }, { outcome: 'running', n: 10 }], 'one attempt row per claim')

  // A second finish of an already finished attempt (a duplicate delivery) changes nothing.
  t.equal(await transitions.fail(ids[0]!, 1, { error: { message: 'late', code: 'E' }, durationMs: 1 }), false)
  t.equal((await h.getTask(ids[0]!)).status, 'completed')
})

t.test('two claims of one task at the same moment are two attempts in order, the first closed as lost', async (t) => {
  const h = await startHarness(t)
  const transitions = createTaskTransitions(h.sql, { maxLostAttempts: 3 })
  const claim = (id: string, workerId: string) => transitions.claim({ taskId: id, workerId, leaseId: crypto.randomUUID() }).then((c) => c?.task)
  const { id } = await h.createTask({ type: 'echo', payload: {} })
  const [a, b] = await Promise.all([claim(id, 'w1'), claim(id, 'w2')])
  t.same([a?.attempts, b?.attempts], [1, 2], 'never one statement claiming the same row twice')
  const attempts = (await h.app.inject({ url: `/v1/tasks/${id}/attempts` })).json().items
  t.same(attempts.map((x: { outcome: string }) => x.outcome), ['lost', 'running'])
})

t.test('a claim the batcher stopped waiting for is retried under its lease: the late statement\'s attempt is the one answered, none lost', async (t) => {
  const h = await startHarness(t)
  // As transitions.ts batches claims, with a timeout short enough to pass while a row lock holds the statement.
  const batches = createTransitionBatchStatements(h.sql, { maxLostAttempts: 3, left: () => {} })
  const claim = createWriteBatcher({ run: batches.claim, key: (i: { taskId: string }) => i.taskId, timeoutMs: 200 })
  const { id } = await h.createTask({ type: 'echo', payload: {} })
  const holder = await h.sql.reserve()
  t.teardown(() => holder.release())
  await holder`begin`
  await holder`select 1 from tasks where id = ${id} for update`
  const leaseId = crypto.randomUUID()
  let tries = 0
  const claimed = retryOnOutage(() => { tries++; return claim({ taskId: id, workerId: 'w1', leaseId }) }).catch((err: unknown) => err)
  // Past the timeout the first statement is still blocked: the retry waits for it, not beside it.
  await new Promise((resolve) => setTimeout(resolve, 600))
  await holder`commit`
  const outcome = await claimed
  t.ok(tries >= 2, 'the claim was tried again after the batcher stopped waiting')
  t.match(outcome, { outcome: 'claimed', task: { attempts: 1, leaseId, lostAttempts: 0 } }, 'the retry answers the attempt the late statement opened')
  const attempts = await h.sql<{ attempt: number, outcome: string }[]>`select attempt, outcome from task_attempts where task_id = ${id} order by attempt`
  t.same(attempts, [{ attempt: 1, outcome: 'running' }], 'one attempt, none recorded lost')
})

t.test('concurrent single and batch creates share statements and each gets exactly its own tasks', async (t) => {
  const h = await startHarness(t)
  const singles = Array.from({ length: 30 }, (_, i) =>
    h.app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload: { single: i } } }))
  const batches = Array.from({ length: 3 }, (_, b) =>
    h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks: Array.from({ length: 20 }, (_, i) => ({ type: 'echo', payload: { b, i } })) } }))
  const single = await Promise.all(singles)
  const batch = await Promise.all(batches)
  single.forEach((res, i) => t.match(res.json(), { status: 'queued', payload: { single: i } }))
  batch.forEach((res, b) => t.same(res.json().items.map((x: { payload: unknown }) => x.payload), Array.from({ length: 20 }, (_, i) => ({ b, i }))))
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks`
  t.equal(row?.n, 90, 'every task stored once')
  const counts = await h.deps.queues.get('default').getJobCounts('prioritized', 'waiting')
  t.equal(counts.prioritized! + counts.waiting!, 90, 'and enqueued once')
})

t.test('a batch whose idempotency keys are partly taken stores nothing (one statement, all or nothing)', async (t) => {
  const h = await startHarness(t)
  const batch = (n: number) => h.app.inject({
    method: 'POST', url: '/v1/tasks/batch', headers: { 'idempotency-key': 'k1' },
    payload: { tasks: Array.from({ length: n }, (_, i) => ({ type: 'echo', payload: { i } })) },
  })
  t.equal((await batch(2)).statusCode, 202)
  const longer = await batch(3) // keys k1/0 and k1/1 are taken, k1/2 is not
  t.equal(longer.statusCode, 409)
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks`
  t.equal(row?.n, 2, 'k1/2 was not stored either')
  t.equal((await batch(2)).statusCode, 200, 'the original batch still replays')
})

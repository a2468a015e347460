import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startHarness } from './helpers/harness.ts'
import { DRILL_ENV, faultReport, judge, signalAndWait, waitForTerminalCount, type DrillTask } from './helpers/fault-tools.ts'
import { spawnService } from './helpers/fault-services.ts'
import { startExecutionReceiver } from './helpers/execution-receiver.ts'

const BATCH = 1000

// A fast reconciler: a batch stored by an API killed before it enqueued runs within seconds.
const WORKER_ENV = {
  TASKLANE_QUEUES: 'http:50',
  TASKLANE_RECONCILER_INTERVAL_MS: '300',
  TASKLANE_RECONCILER_MIN_AGE_MS: '1000',
  TASKLANE_RECONCILER_STALE_RUNNING_MS: '3000',
}

type Sent = { batch: string, status: number | 'no answer', ids: string[] }

t.test('the API SIGKILLed in the middle of 1000-task batches: no partial batch stored, every 202 batch stored whole and completed', async (t) => {
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: DRILL_ENV })
  await h.spawnWorker(WORKER_ENV)
  const apiEnv = {
    DATABASE_URL: h.config.DATABASE_URL, REDIS_URL: h.config.REDIS_URL, TASKLANE_QUEUE_PREFIX: h.config.TASKLANE_QUEUE_PREFIX,
    PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1', TASKLANE_AUTH: 'disabled', TASKLANE_RATE_LIMIT_MAX: '0',
  }
  async function startApi () {
    let port = 0
    const api = await spawnService(t, 'services/api/server.ts', apiEnv, (line) => {
      const at = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(String(line.msg))
      if (at) port = Number(at[1])
      return line.msg === 'metrics listener started'
    })
    return { child: api.child, port }
  }

  const sent: Sent[] = []
  let serial = 0
  async function send (port: number): Promise<void> {
    const batch = `b${serial++}`
    const record: Sent = { batch, status: 'no answer', ids: [] }
    sent.push(record)
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/tasks/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tasks: receiver.tasks(`${batch}-`, BATCH).map((x) => x.body) }),
      })
      record.status = res.status
      if (res.status === 202) record.ids = ((await res.json()) as { items: { id: string }[] }).items.map((x) => x.id)
    } catch { /* the connection died with the API: the client cannot know whether it was stored */ }
  }

  // Each round: one batch answered, then two in flight when the API is killed, at a different
  // moment each round (parsing and validating, inserting, enqueueing).
  for (const killAfterMs of [30, 120, 300]) {
    const api = await startApi()
    await send(api.port)
    const inFlight = [send(api.port), send(api.port)]
    await sleep(killAfterMs)
    t.equal((await signalAndWait(api.child, 'SIGKILL')).signal, 'SIGKILL')
    await Promise.all(inFlight)
  }

  const stored = await h.sql<{ id: string, key: string }[]>`
    select id, substring(payload ->> 'url' from '/exec/(b[0-9]+-[0-9]+)') as key from tasks`
  const perBatch = new Map<string, DrillTask[]>()
  for (const { id, key } of stored) {
    const batch = key.split('-')[0]!
    perBatch.set(batch, [...(perBatch.get(batch) ?? []), { id, key }])
  }
  const outcome = sent.map((s) => `${s.batch}:${s.status}/${perBatch.get(s.batch)?.length ?? 0} stored`)
  t.comment(`batches: ${outcome.join(' ')}`)
  t.same(sent.filter((s) => ![0, BATCH].includes(perBatch.get(s.batch)?.length ?? 0)).map((s) => s.batch), [], 'no batch is stored in part')
  const answered = sent.filter((s) => s.status === 202)
  t.ok(answered.length >= 3, `${answered.length} batches answered 202`)
  t.ok(sent.some((s) => s.status === 'no answer'), 'some batches were cut off by the kill')
  for (const s of answered) {
    t.same(new Set((perBatch.get(s.batch) ?? []).map((x) => x.id)), new Set(s.ids), `batch ${s.batch} answered 202: the ${BATCH} tasks it named are stored`)
  }
  t.same(sent.filter((s) => typeof s.status === 'number' && s.status !== 202).map((s) => `${s.batch}:${s.status}`), [], 'no batch got an answer other than 202')

  // Every stored task, answered or not, must run: the client may never learn the ids of a
  // batch whose answer was cut off, but the work was accepted into Postgres.
  const tasks = [...perBatch.values()].flat()
  await waitForTerminalCount(h.sql, tasks, tasks.length, 90_000)
  judge(t, 'api SIGKILL mid-batch', await faultReport(h.sql, tasks, receiver), 3 * BATCH)
})

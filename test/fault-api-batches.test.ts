import t from 'tap'
import { startHarness, waitFor } from './helpers/harness.ts'
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
  const began = Date.now()
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: DRILL_ENV })
  await h.spawnWorker(WORKER_ENV)
  t.comment(`harness and worker ready in ${Date.now() - began} ms`)
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

  // Each round: one batch answered, then one in flight when the API is killed, at a different
  // moment each round: as soon as its insert runs in Postgres (one statement: it ends whole or
  // not at all, whatever becomes of its client), and as soon as its rows are committed
  // (stored, perhaps not enqueued: the reconciler's part).
  const rounds: { name: string, until: (batch: string) => Promise<unknown> }[] = [
    { name: 'inserting', until: () => waitFor(async () => (await h.sql`select 1 from pg_stat_activity where datname = current_database() and state = 'active' and pid <> pg_backend_pid() and application_name = 'tasklane-api' and query ilike '%insert into%tasks%'`).length > 0, 20_000, 2) },
    { name: 'committed', until: (batch) => waitFor(async () => (await h.sql`select 1 from tasks where payload ->> 'url' like ${`%/exec/${batch}-%`} limit 1`).length > 0, 20_000, 2) },
  ]
  const phases: string[] = []
  for (const round of rounds) {
    const startedAt = Date.now()
    const api = await startApi()
    phases.push(`the API started in ${Date.now() - startedAt} ms`)
    const began = Date.now()
    await send(api.port)
    const took = Date.now() - began
    const inFlight = send(api.port)
    const killed = await round.until(sent.at(-1)!.batch).then(() => true, () => false)
    t.equal((await signalAndWait(api.child, 'SIGKILL')).signal, 'SIGKILL')
    await inFlight
    phases.push(`${round.name}: a batch took ${took} ms, the kill ${killed ? 'came on cue' : 'came late (cue missed)'}`)
  }
  t.comment(phases.join('; '))
  const submittedAt = Date.now()

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
  t.ok(answered.length >= rounds.length, `${answered.length} batches answered 202`)
  t.ok(sent.some((s) => s.status === 'no answer'), 'some batches were cut off by the kill')
  t.ok(sent.some((s) => s.status === 'no answer' && perBatch.get(s.batch)?.length === BATCH), 'a batch was stored although its answer was cut off')
  for (const s of answered) {
    t.same(new Set((perBatch.get(s.batch) ?? []).map((x) => x.id)), new Set(s.ids), `batch ${s.batch} answered 202: the ${BATCH} tasks it named are stored`)
  }
  t.same(sent.filter((s) => typeof s.status === 'number' && s.status !== 202).map((s) => `${s.batch}:${s.status}`), [], 'no batch got an answer other than 202')

  // Every stored task, answered or not, must run: the client may never learn the ids of a
  // batch whose answer was cut off, but the work was accepted into Postgres.
  const tasks = [...perBatch.values()].flat()
  await waitForTerminalCount(h.sql, tasks, tasks.length, 90_000)
  t.comment(`${tasks.length} tasks ran in ${Date.now() - submittedAt} ms after the last kill`)
  judge(t, 'api SIGKILL mid-batch', await faultReport(h.sql, tasks, receiver), 2 * BATCH)
})

import { setTimeout as sleep } from 'node:timers/promises'
import { createDrillStack } from './bench-stack.ts'

// Firing latency of schedules: two API and two worker processes (each runs the schedule loop)
// on a fresh database, one schedule due every second; prints the lag from due time to task
// stored, and checks there is one task per due time. `node bench/schedule-lag.ts [seconds]`.

const seconds = Number(process.argv[2] ?? 60)
const stack = await createDrillStack()
try {
  const prefix = stack.newPrefix()
  const apis = [await stack.startApi(prefix), await stack.startApi(prefix)]
  const workers = [await stack.startWorker(prefix, 1, 10), await stack.startWorker(prefix, 2, 10)]
  const res = await fetch(`http://127.0.0.1:${apis[0]!.port}/v1/schedules`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'every-second', cron: '* * * * * *', overlap: 'allow', task: { type: 'echo' } }),
  })
  if (res.status !== 201) throw new Error(`schedule not created: ${res.status} ${await res.text()}`)
  await sleep(seconds * 1000)
  for (const p of [...apis, ...workers]) await p.stop()
  const rows = await stack.sql<{ lag: number, due: number }[]>`
    select extract(epoch from created_at - scheduled_for)::float8 * 1000 as lag, extract(epoch from scheduled_for)::float8 as due
    from tasks where schedule_id is not null order by scheduled_for`
  const lags = rows.map((r) => r.lag).sort((a, b) => a - b)
  const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!.toFixed(1)
  const gaps = rows.slice(1).filter((r, i) => r.due - rows[i]!.due !== 1).length
  console.log(`schedule lag over ${rows.length} due times (2 APIs + 2 workers, every second for ${seconds} s):`)
  console.log(`  p50 ${at(0.5)} ms   p99 ${at(0.99)} ms   max ${lags.at(-1)!.toFixed(1)} ms   over 1 s: ${lags.filter((l) => l > 1000).length}`)
  console.log(`  due times with no task or a second task: ${gaps}`)
} finally {
  await stack.close()
}

// The pg-boss worker: `PEER_BATCH_SIZE` jobs a fetch, as many fetching loops as it takes to keep
// `PEER_CONCURRENCY` jobs in hand, every job's output stored like Tasklane's result.
import { PgBoss, type Job } from 'pg-boss'
import { listenReady, onSigterm } from './ready-server.ts'

type Data = { type: string, payload: Record<string, unknown> }

const batchSize = Number(process.env.PEER_BATCH_SIZE ?? 1)
const concurrency = Number(process.env.PEER_CONCURRENCY ?? 100)
const notify = process.env.PEER_NOTIFY === '1'
const boss = new PgBoss({ connectionString: process.env.DATABASE_URL!, schema: process.env.PEER_SCHEMA!, max: 10, useListenNotify: notify })
boss.on('error', () => {})
await boss.start()
await boss.createQueue('tasks', { notify })

const options = {
  batchSize,
  localConcurrency: Math.max(1, Math.round(concurrency / batchSize)),
  pollingIntervalSeconds: 0.5,
  burstWhenBatchFull: batchSize > 1,
  perJobResults: true,
} as const
await boss.work<Data>('tasks', options, async (jobs: Job<Data>[]) => jobs.map((job) => ({ id: job.id, status: 'completed' as const, output: job.data.payload })))

const ready = await listenReady(Number(process.env.PORT))
onSigterm(async () => {
  await boss.stop({ graceful: true, timeout: 5_000 })
  ready.close()
})

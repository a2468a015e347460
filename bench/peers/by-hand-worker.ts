// The worker half of the hand-written pipeline (see by-hand-api.ts): a BullMQ Worker that marks
// the row running, runs the echo handler and records the result.
import { Worker } from 'bullmq'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import { listenReady, onSigterm } from './ready-server.ts'

type Data = { id: string, payload: Record<string, unknown> }

const sql = postgres(process.env.DATABASE_URL!, { max: 10, onnotice: () => {} })
const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null })

const worker = new Worker<Data>('tasks', async (job) => {
  await sql`update hand_tasks set status = 'running', started_at = now() where id = ${job.data.id}`
  const result = job.data.payload
  await sql`update hand_tasks set status = 'completed', result = ${sql.json(result as postgres.JSONValue)}, finished_at = now() where id = ${job.data.id}`
  return result
}, { connection, prefix: process.env.PEER_PREFIX!, concurrency: Number(process.env.PEER_CONCURRENCY ?? 100) })
worker.on('error', () => {})

const ready = await listenReady(Number(process.env.PORT))
onSigterm(async () => {
  await worker.close()
  connection.disconnect()
  await sql.end({ timeout: 5 })
  ready.close()
})

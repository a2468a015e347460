// The pipeline a team would write instead of running Tasklane, from Fastify's, postgres.js' and
// BullMQ's own guides: POST inserts a row and adds a job. No auth, attempts, events, metrics or
// idempotency. Run by the benchmark (bench/peers-phase.ts), not a product.
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import { createPeerApp } from './peer-http.ts'
import { onSigterm } from './ready-server.ts'

const sql = postgres(process.env.DATABASE_URL!, { max: 10, onnotice: () => {} })
const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: 1 })
const queue = new Queue('tasks', { connection, prefix: process.env.PEER_PREFIX! })
queue.on('error', () => {})

await sql`
  create table if not exists hand_tasks (
    id uuid primary key default gen_random_uuid(),
    type text not null,
    payload jsonb not null,
    status text not null default 'queued',
    result jsonb,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz
  )`

const app = createPeerApp(async ({ type, payload }) => {
  const [row] = await sql<{ id: string }[]>`insert into hand_tasks (type, payload) values (${type}, ${sql.json(payload as postgres.JSONValue)}) returning id`
  await queue.add(type, { id: row!.id, payload }, { removeOnComplete: 1_000, removeOnFail: 5_000 })
  return row!.id
})

onSigterm(async () => {
  await app.close()
  await queue.close()
  connection.disconnect()
  await sql.end({ timeout: 5 })
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })

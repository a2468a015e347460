// pg-boss as its documentation sets it up, behind the same POST as the other systems: the job
// row is the task. Run by the benchmark (bench/peers-phase.ts).
import Fastify from 'fastify'
import { PgBoss } from 'pg-boss'
import { onSigterm } from './ready-server.ts'

// Workers fetching one job at a time need waking on every send (polling alone caps them at
// one job per worker per interval); batch workers keep fetching while batches come back full.
const notify = process.env.PEER_NOTIFY === '1'
const boss = new PgBoss({ connectionString: process.env.DATABASE_URL!, schema: process.env.PEER_SCHEMA!, max: 10, useListenNotify: notify })
boss.on('error', () => {})
await boss.start()
await boss.createQueue('tasks', { notify })

const app = Fastify({ logger: false })
const body = {
  type: 'object',
  required: ['type', 'payload'],
  properties: { type: { type: 'string', minLength: 1, maxLength: 100 }, payload: { type: 'object' } },
} as const

app.post<{ Body: { type: string, payload: Record<string, unknown> } }>('/tasks', { schema: { body } }, async (req, reply) => {
  const id = await boss.send('tasks', { type: req.body.type, payload: req.body.payload })
  return reply.code(202).send({ id, status: 'queued' })
})
app.get('/readyz', async () => ({ ok: true }))

onSigterm(async () => {
  await app.close()
  await boss.stop({ graceful: false })
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })

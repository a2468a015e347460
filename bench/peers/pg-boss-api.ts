// pg-boss as its documentation sets it up, behind the same POST as the other systems: the job
// row is the task. Run by the benchmark (bench/peers-phase.ts).
import { PgBoss } from 'pg-boss'
import { createPeerApp } from './peer-http.ts'
import { onSigterm } from './ready-server.ts'

// Workers fetching one job at a time need waking on every send (polling alone caps them at
// one job per worker per interval); batch workers keep fetching while batches come back full.
const notify = process.env.PEER_NOTIFY === '1'
const boss = new PgBoss({ connectionString: process.env.DATABASE_URL!, schema: process.env.PEER_SCHEMA!, max: 10, useListenNotify: notify })
boss.on('error', () => {})
await boss.start()
await boss.createQueue('tasks', { notify })

const app = createPeerApp(async (body) => await boss.send('tasks', body))

onSigterm(async () => {
  await app.close()
  await boss.stop({ graceful: false })
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })

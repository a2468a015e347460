import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type postgres from 'postgres'
import type { ServiceProcess } from './bench-stack.ts'
import { createTypedTasks, waitCompleted } from './registered-type-tasks.ts'

export type WebhookFigures = { tasks: number, completed: number, requests: number, concurrency: number, tasksPerSec: number }

const TYPE = 'bench-webhook'

/**
 * Webhook executors against a receiver in this process that answers 200 with a small JSON
 * result at once (no signature check: the receiver's cost is not what is measured): `count`
 * tasks created first, then one worker sends them, `concurrency` requests at a time.
 */
export async function runWebhookPhase (deps: {
  apiUrl: string
  sql: postgres.Sql
  count: number
  concurrency: number
  startWorker: (env: Record<string, string>) => Promise<ServiceProcess>
}): Promise<WebhookFigures & { workerPeakRssMb: number | null }> {
  let requests = 0
  const server = createServer((req, res) => {
    requests++
    req.resume()
    req.once('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'))
  })
  server.keepAliveTimeout = 30_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
    await createTypedTasks(deps.apiUrl, TYPE, { kind: 'webhook', url }, deps.count)
    const worker = await deps.startWorker({ TASKLANE_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', TASKLANE_WEBHOOK_CONCURRENCY: String(deps.concurrency) })
    const { done, seconds } = await waitCompleted(deps.sql, TYPE, deps.count)
    const workerPeakRssMb = (await worker.stop()) ?? null
    return { tasks: deps.count, completed: done, requests, concurrency: deps.concurrency, tasksPerSec: Math.round(done / seconds), workerPeakRssMb }
  } finally {
    server.closeAllConnections()
    server.close()
  }
}

import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type postgres from 'postgres'
import type { ServiceProcess } from './bench-stack.ts'

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
    const headers = { 'content-type': 'application/json' }
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
    const put = await fetch(`${deps.apiUrl}/v1/task-types/${TYPE}`, { method: 'PUT', headers, body: JSON.stringify({ executor: { kind: 'webhook', url } }) })
    if (put.status !== 201 && put.status !== 200) throw new Error(`webhook: registering the type failed with ${put.status}: ${await put.text()}`)
    for (let i = 0; i < Math.ceil(deps.count / 1_000); i++) {
      const n = Math.min(1_000, deps.count - i * 1_000)
      const res = await fetch(`${deps.apiUrl}/v1/tasks/batch`, {
        method: 'POST', headers, body: JSON.stringify({ tasks: Array.from({ length: n }, () => ({ type: TYPE, payload: { n: 42 } })) }),
      })
      if (res.status !== 202) throw new Error(`webhook: creating tasks failed with ${res.status}: ${await res.text()}`)
      await res.arrayBuffer()
    }
    const worker = await deps.startWorker({ TASKLANE_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', TASKLANE_WEBHOOK_CONCURRENCY: String(deps.concurrency) })
    const started = performance.now()
    const deadline = Date.now() + 180_000
    let done = 0
    while (done < deps.count && Date.now() < deadline) {
      await sleep(50)
      const [row] = await deps.sql<{ n: number }[]>`select count(*)::int as n from tasks where type = ${TYPE} and status = 'completed'`
      done = row!.n
    }
    const seconds = (performance.now() - started) / 1000
    const workerPeakRssMb = (await worker.stop()) ?? null
    return { tasks: deps.count, completed: done, requests, concurrency: deps.concurrency, tasksPerSec: Math.round(done / seconds), workerPeakRssMb }
  } finally {
    server.closeAllConnections()
    server.close()
  }
}

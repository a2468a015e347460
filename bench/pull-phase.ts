import { setTimeout as sleep } from 'node:timers/promises'
import type postgres from 'postgres'
import { createWorker } from '../clients/typescript/src/index.ts'

export type PullFigures = { tasks: number, completed: number, leaseMax: number, tasksPerSec: number }

const TYPE = 'bench-pull'
const LEASE_MAX = 50

/**
 * The pull side beside the in-process drain: `count` tasks of a registered pull type created
 * first, then leased (up to 50 a request) and completed over HTTP by the TypeScript client
 * running in this process, with a handler that returns at once.
 */
export async function runPullPhase (deps: { apiUrl: string, sql: postgres.Sql, count: number }): Promise<PullFigures> {
  const headers = { 'content-type': 'application/json' }
  const put = await fetch(`${deps.apiUrl}/v1/task-types/${TYPE}`, { method: 'PUT', headers, body: JSON.stringify({ executor: { kind: 'pull' } }) })
  if (put.status !== 201 && put.status !== 200) throw new Error(`pull: registering the type failed with ${put.status}: ${await put.text()}`)
  for (let i = 0; i < Math.ceil(deps.count / 1_000); i++) {
    const n = Math.min(1_000, deps.count - i * 1_000)
    const res = await fetch(`${deps.apiUrl}/v1/tasks/batch`, {
      method: 'POST', headers, body: JSON.stringify({ tasks: Array.from({ length: n }, () => ({ type: TYPE, payload: { n: 42 } })) }),
    })
    if (res.status !== 202) throw new Error(`pull: creating tasks failed with ${res.status}: ${await res.text()}`)
    await res.arrayBuffer()
  }
  // Authentication is off in the bench stack: any key will do.
  const worker = createWorker({
    url: deps.apiUrl, apiKey: 'bench', concurrency: LEASE_MAX, waitMs: 1_000, workerId: 'bench-pull',
    handlers: { [TYPE]: async (task) => task.payload },
  })
  const started = performance.now()
  worker.start()
  const deadline = Date.now() + 180_000
  let done = 0
  while (done < deps.count && Date.now() < deadline) {
    await sleep(50)
    const [row] = await deps.sql<{ n: number }[]>`select count(*)::int as n from tasks where type = ${TYPE} and status = 'completed'`
    done = row!.n
  }
  const seconds = (performance.now() - started) / 1000
  await worker.stop(5_000)
  return { tasks: deps.count, completed: done, leaseMax: LEASE_MAX, tasksPerSec: Math.round(done / seconds) }
}

import { setTimeout as sleep } from 'node:timers/promises'
import type postgres from 'postgres'

// What the phases of registered types share: register the type, create its tasks before any
// executor runs, and wait until they have all completed.

/** Registers `type` and creates `count` of its tasks, 1,000 a batch. */
export async function createTypedTasks (apiUrl: string, type: string, executor: Record<string, unknown>, count: number): Promise<void> {
  const headers = { 'content-type': 'application/json' }
  const put = await fetch(`${apiUrl}/v1/task-types/${type}`, { method: 'PUT', headers, body: JSON.stringify({ executor }) })
  if (put.status !== 201 && put.status !== 200) throw new Error(`${type}: registering the type failed with ${put.status}: ${await put.text()}`)
  for (let i = 0; i < Math.ceil(count / 1_000); i++) {
    const n = Math.min(1_000, count - i * 1_000)
    const res = await fetch(`${apiUrl}/v1/tasks/batch`, {
      method: 'POST', headers, body: JSON.stringify({ tasks: Array.from({ length: n }, () => ({ type, payload: { n: 42 } })) }),
    })
    if (res.status !== 202) throw new Error(`${type}: creating tasks failed with ${res.status}: ${await res.text()}`)
    await res.arrayBuffer()
  }
}

/** Polls until `count` tasks of `type` are completed (or 180 s pass); how many were, and in how many seconds. */
export async function waitCompleted (sql: postgres.Sql, type: string, count: number): Promise<{ done: number, seconds: number }> {
  const started = performance.now()
  const deadline = Date.now() + 180_000
  let done = 0
  while (done < count && Date.now() < deadline) {
    await sleep(50)
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from tasks where type = ${type} and status = 'completed'`
    done = row!.n
  }
  return { done, seconds: (performance.now() - started) / 1000 }
}

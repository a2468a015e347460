import type postgres from 'postgres'
import { createWorker } from '../clients/typescript/src/index.ts'
import type { WindowCost } from './bench-phases.ts'
import { createTypedTasks, waitCompleted } from './registered-type-tasks.ts'

export type PullFigures = { tasks: number, completed: number, leaseMax: number, tasksPerSec: number } & Partial<WindowCost>

const TYPE = 'bench-pull'
const LEASE_MAX = 50

/**
 * The pull side beside the in-process drain: `count` tasks of a registered pull type created
 * first, then leased (up to 50 a request) and completed over HTTP by the TypeScript client
 * running in this process, with a handler that returns at once. `meter`, when given, opens a
 * window over the work (its `client` CPU is this process's).
 */
export async function runPullPhase (deps: { apiUrl: string, sql: postgres.Sql, count: number,
  meter?: () => Promise<(done: number) => Promise<WindowCost>> }): Promise<PullFigures> {
  await createTypedTasks(deps.apiUrl, TYPE, { kind: 'pull' }, deps.count)
  // Authentication is off in the bench stack: any key will do.
  const worker = createWorker({
    url: deps.apiUrl, apiKey: 'bench', concurrency: LEASE_MAX, waitMs: 1_000, workerId: 'bench-pull',
    handlers: { [TYPE]: async (task) => task.payload },
  })
  const close = await deps.meter?.()
  worker.start()
  const { done, seconds } = await waitCompleted(deps.sql, TYPE, deps.count)
  const cost = await close?.(done)
  await worker.stop(5_000)
  return { tasks: deps.count, completed: done, leaseMax: LEASE_MAX, tasksPerSec: Math.round(done / seconds), ...cost }
}

import type { BenchOptions } from './bench-options.ts'
import { bodyFor } from './bench-phases.ts'
import type { BenchStack } from './bench-stack.ts'
import type { Percentiles } from './http-load.ts'
import { runPacedLoad } from './paced-load.ts'

export type FairnessFigures = {
  /** Tasks/s the low-rate tenant sends. */
  steadyPerSec: number
  /** The low-rate tenant's pickup (runAt to start), alone and beside a saturating tenant. */
  alone: Percentiles
  beside: Percentiles
  /**
   * What the flooding tenant got done per second; the least backlog it had at any check during
   * the measurement (above 0: it saturated the worker throughout), and the tasks added to keep it so.
   */
  floodCompletedPerSec: number
  floodBacklog: number
  floodToppedUp: number
  dispatchWindow: string
}

const STEADY_PER_SEC = 20
/** How often the flood's backlog is checked (and topped up) while the low-rate tenant sends. */
const TOP_UP_EVERY_MS = 500
/** The flood is topped up below this many seconds of the worker's measured drain rate. */
const TOP_UP_BELOW_SEC = 5
const KEYS = { flood: 'bench-flood-tenant-key-000001', steady: 'bench-steady-tenant-key-00001' }
const ENV = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `flood:${KEYS.flood},steady:${KEYS.steady}` }
const auth = (key: string) => ({ authorization: `Bearer ${key}` })

async function pickup (stack: BenchStack, tenant: string, from: Date): Promise<Percentiles> {
  const [row] = await stack.sql<{ p: number[] | null }[]>`
    select percentile_disc(array[0.5, 0.95, 0.99]) within group (order by extract(epoch from started_at - run_at) * 1000) as p
    from tasks where tenant = ${tenant} and created_at >= ${from.toISOString()}::timestamptz and started_at is not null`
  const at = (i: number) => Math.round(Number(row?.p?.[i] ?? 0) * 10) / 10
  return { p50: at(0), p95: at(1), p99: at(2) }
}

/**
 * Fair sharing: a low-rate tenant (20 tasks/s, evenly paced) alone, then beside a tenant whose
 * backlog saturates the worker (2 x --drain-tasks echo tasks created before the worker starts,
 * so the flood loads the worker, not the API the low-rate tenant creates through). One worker;
 * each run has its own API, worker and prefix, with two tenants' keys.
 */
export async function runFairness (deps: { stack: BenchStack, options: BenchOptions }): Promise<FairnessFigures> {
  const { stack, options } = deps

  async function sendFlood (url: string, total: number): Promise<void> {
    for (let sent = 0; sent < total; sent += 1_000) {
      const res = await fetch(`${url}/batch`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...auth(KEYS.flood) }, body: bodyFor('batch', Math.min(1_000, total - sent)),
      })
      if (res.status !== 202) throw new Error(`fairness: creating the flood failed with ${res.status}: ${await res.text()}`)
      await res.arrayBuffer().catch(() => {})
    }
  }

  const floodBacklog = async (): Promise<number> => (await stack.sql<{ n: number }[]>`
    select count(*)::int as n from tasks where tenant = 'flood' and status in ('queued', 'running')`)[0]!.n

  /**
   * Keeps the flood ahead of the worker until `done` resolves: a fixed flood drains within the
   * window when the worker is fast (a high concurrency), and the low-rate tenant would then be
   * measured alone. Whenever the backlog falls below --drain-tasks or a few seconds of the
   * drain rate seen so far, it is filled to twice that. Answers the least backlog seen and the tasks added.
   */
  async function topUp (url: string, done: Promise<unknown>): Promise<{ least: number, added: number }> {
    let over = false
    void done.finally(() => { over = true })
    let least = Number.POSITIVE_INFINITY
    let added = 0
    let last = { at: Date.now(), backlog: await floodBacklog() }
    let rate = 0
    while (!over) {
      await new Promise((resolve) => setTimeout(resolve, TOP_UP_EVERY_MS))
      const backlog = await floodBacklog()
      const now = Date.now()
      rate = Math.max(rate, (last.backlog - backlog) / ((now - last.at) / 1000))
      least = Math.min(least, backlog)
      const floor = Math.max(options.drainTasks, Math.ceil(rate * TOP_UP_BELOW_SEC))
      let more = 0
      if (!over && backlog < floor) {
        more = Math.ceil((2 * floor - backlog) / 1_000) * 1_000
        await sendFlood(url, more)
        added += more
      }
      last = { at: now, backlog: backlog + more }
    }
    return { least: Number.isFinite(least) ? least : 0, added }
  }

  async function run (flood: boolean) {
    const prefix = stack.newPrefix()
    const api = await stack.startApi(prefix, ENV)
    const url = `http://127.0.0.1:${api.port}/v1/tasks`
    if (flood) await sendFlood(url, options.drainTasks * 2)
    const worker = await stack.startWorker(prefix, 0, options.concurrency)
    let from = new Date()
    const steady = runPacedLoad({
      url, body: bodyFor('single', 1), headers: auth(KEYS.steady), ratePerSec: STEADY_PER_SEC,
      durationSec: options.rateDurationSec, warmupSec: options.warmupSec, connections: 4, onWarm: () => { from = new Date() },
    })
    const kept = flood ? topUp(url, steady) : Promise.resolve({ least: 0, added: 0 })
    await steady
    const to = new Date()
    const { least, added } = await kept
    // The last paced tasks get a moment to start.
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const figures = await pickup(stack, 'steady', from)
    const [done] = await stack.sql<{ n: number, backlog: number }[]>`
      select count(*) filter (where status = 'completed' and finished_at between ${from.toISOString()}::timestamptz and ${to.toISOString()}::timestamptz)::int as n,
             count(*) filter (where status in ('queued', 'running'))::int as backlog
      from tasks where tenant = 'flood'`
    await worker.stop()
    await api.stop()
    await stack.dropPrefix(prefix)
    await stack.resetTables()
    const seconds = (to.getTime() - from.getTime()) / 1000
    return { figures, floodPerSec: Math.round(done!.n / seconds), backlog: Math.min(least, done!.backlog), added }
  }

  const alone = await run(false)
  const beside = await run(true)
  return {
    steadyPerSec: STEADY_PER_SEC,
    alone: alone.figures,
    beside: beside.figures,
    floodCompletedPerSec: beside.floodPerSec,
    floodBacklog: beside.backlog,
    floodToppedUp: beside.added,
    dispatchWindow: options.env.TASKLANE_DISPATCH_WINDOW ?? 'default',
  }
}

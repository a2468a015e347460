import type { CreateFigures, DrainFigures, EndToEndFigures } from './bench-phases.ts'
import type { FairnessFigures } from './fairness-phase.ts'
import { formatNotifyHang, type NotifyHangFigures } from './notify-hang-phase.ts'
import type { Percentiles } from './http-load.ts'
import type { RawBullmqResult } from './raw-bullmq.ts'
import { formatTableWrites } from './table-writes.ts'
import type { PullFigures } from './pull-phase.ts'
import type { WebhookFigures } from './webhook-phase.ts'
import { formatPeers, type PeersResult } from './peers-report.ts'

export type BenchResult = {
  bench: 'tasklane'
  mode: 'full' | 'smoke'
  startedAt: string
  machine: { cpus: number, cpuModel: string, memoryGb: number, node: string, postgres: string, redis: string }
  settings: Record<string, unknown>
  rawBullmq: RawBullmqResult | null
  peers: PeersResult | null
  create: { single: CreateFigures | null, batch: CreateFigures | null }
  drain: DrainFigures | null
  pull?: PullFigures | null
  webhook?: WebhookFigures | null
  fixedRate: (EndToEndFigures & { targetPerSec: number }) | null
  endToEnd: EndToEndFigures[]
  notifyHang?: NotifyHangFigures[] | null
  fairness?: FairnessFigures | null
  peakRssMb: { api: number | null, worker: number | null }
  ratioToRawBullmq: { single: number | null, batch: number | null, drain?: number | null }
  notes: string[]
}

const pct = (p: Percentiles): string => `${p.p50} / ${p.p95} / ${p.p99}`

function table (head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))]
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  return [line(head), `|${widths.map((w, i) => (i === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`, ...cells.slice(1).map(line)].join('\n')
}

/** The human half of the output: Markdown tables, ready for the README. */
export function formatReport (r: BenchResult): string {
  const out: string[] = []
  const m = r.machine
  out.push(`Tasklane benchmark (${r.mode}), ${r.startedAt}`)
  out.push(`${m.cpus} x ${m.cpuModel}, ${m.memoryGb} GB; Node ${m.node}; Postgres ${m.postgres}; Redis ${m.redis}`, '')

  if (r.peers) out.push(formatPeers(r.peers, table), '')

  const creates = (['single', 'batch'] as const).flatMap((route) => {
    const c = r.create[route]
    return c ? [[`POST /v1/tasks${route === 'batch' ? '/batch' : ''}`, c.requestsPerSec, c.tasksPerSec, pct(c.latencyMs), c.errors + c.non2xx]] : []
  })
  if (creates.length > 0) {
    out.push('Create (API alone, no workers)', table(['route', 'req/s', 'tasks/s', 'latency ms p50 / p95 / p99', 'errors'], creates), '')
  }

  const flows = [...(r.fixedRate ? [{ ...r.fixedRate, label: `single @ ${r.fixedRate.targetPerSec}/s` }] : []), ...r.endToEnd.map((e) => ({ ...e, label: `${e.route}, saturated` }))]
  if (flows.length > 0) {
    out.push('End to end (echo tasks created over HTTP, recorded completed in Postgres)')
    out.push(table(
      ['load', 'workers', 'created/s', 'completed/s', 'pickup ms p50 / p95 / p99', 'end-to-end ms p50 / p95 / p99', 'vs raw BullMQ'],
      flows.map((f) => [f.label, f.workers, f.createdPerSec, f.tasksPerSec, pct(f.pickupMs), pct(f.endToEndMs),
        r.rawBullmq ? `${Math.round((f.tasksPerSec / r.rawBullmq.drainPerSec) * 100)}%` : '-']),
    ), '')
    out.push('CPU seconds per 1,000 tasks')
    out.push(table(
      ['load', 'workers', 'API', 'worker(s)', 'Postgres', 'Redis', 'load generator', 'PG commits/task', 'Redis cmds/task'],
      flows.map((f) => [f.label, f.workers, f.cpuSecPer1kTasks.api, f.cpuSecPer1kTasks.worker, f.cpuSecPer1kTasks.postgres, f.cpuSecPer1kTasks.redis,
        f.cpuSecPer1kTasks.loadGenerator, f.perTask.postgresCommits, f.perTask.redisCommands]),
    ), '')
  }
  if (r.notifyHang && r.notifyHang.length > 0) out.push(formatNotifyHang(r.notifyHang, table), '')
  if (r.pull) {
    const p = r.pull
    const ofDrain = r.drain ? ` (${Math.round((p.tasksPerSec / r.drain.tasksPerSec) * 100)}% of the worker drain)` : ''
    const cost = p.cpuSecPer1kTasks && p.perTask
      ? `; CPU s per 1,000 tasks: API ${p.cpuSecPer1kTasks.api}, client ${p.cpuSecPer1kTasks.client}, Postgres ${p.cpuSecPer1kTasks.postgres}, Redis ${p.cpuSecPer1kTasks.redis}; per task: ${p.perTask.postgresCommits} PG commits, ${p.perTask.redisCommands} Redis cmds, ${p.perTask.redisReads} Redis reads of ${p.perTask.redisBytesIn} bytes`
      : ''
    out.push(`Pull workers (${p.tasks} tasks created first, leased ${p.leaseMax} a request and completed over HTTP by the TypeScript client): ${p.tasksPerSec} tasks/s${ofDrain}${cost}`)
  }
  if (r.webhook) {
    const w = r.webhook
    out.push(`Webhook executors (${w.tasks} tasks created first, 1 worker sending ${w.concurrency} signed POSTs at a time to a local receiver answering 200): ${w.tasksPerSec} tasks/s, ${w.requests} requests`)
  }
  if (r.drain) {
    const d = r.drain
    out.push(`Worker drain (${d.tasks} tasks created first, 1 worker): ${d.tasksPerSec} tasks/s${r.rawBullmq ? ` (${Math.round((d.tasksPerSec / r.rawBullmq.drainPerSec) * 100)}% of raw BullMQ)` : ''}; CPU s per 1,000 tasks: worker ${d.cpuSecPer1kTasks.worker}, Postgres ${d.cpuSecPer1kTasks.postgres}, Redis ${d.cpuSecPer1kTasks.redis}${d.perTask ? `; per task: ${d.perTask.postgresCommits} PG commits, ${d.perTask.redisCommands} Redis cmds` : ''}`)
    if (d.writes) out.push(formatTableWrites(d.writes))
  }
  if (r.rawBullmq) {
    out.push(`Raw BullMQ, same Redis: bulk add ${r.rawBullmq.addPerSec} jobs/s; one Worker, no-op processor, concurrency ${r.rawBullmq.concurrency}: ${r.rawBullmq.drainPerSec} jobs/s (${r.rawBullmq.jobs} jobs); CPU s per 1,000 jobs: worker ${r.rawBullmq.cpuSecPer1kJobs.worker}, Redis ${r.rawBullmq.cpuSecPer1kJobs.redis}`)
  }
  if (r.fairness) {
    const f = r.fairness
    out.push(`Fair sharing (1 worker; a tenant at ${f.steadyPerSec} tasks/s, pickup ms p50 / p95 / p99): alone ${pct(f.alone)}; ` +
      `beside a tenant whose backlog saturates the worker ${pct(f.beside)} (that tenant completed ${f.floodCompletedPerSec} tasks/s, ` +
      `never fewer than ${f.floodBacklog} queued, ${f.floodToppedUp} added while measuring; dispatch window ${f.dispatchWindow})`)
  }
  out.push(`Peak RSS: API ${r.peakRssMb.api ?? '-'} MB, worker ${r.peakRssMb.worker ?? '-'} MB (concurrency ${String(r.settings.concurrency)})`)
  for (const note of r.notes) out.push(`Note: ${note}`)
  return out.join('\n')
}

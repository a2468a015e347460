import { SYSTEMS, type PeerRun, type System } from './peers-phase.ts'

type Figures = {
  tasksPerSec: number
  cpuMsPerTask: { api: number, worker: number, postgres: number, redis: number, total: number }
  redisCommandsPerTask: number
  peakRssMb: { api: number, worker: number }
  requestP99Ms: number
  httpErrors: number
}

type Ratios = { tasksPerSec: number[], cpuPerTask: number[], medianTasksPerSec: number, medianCpuPerTask: number }

export type PeersResult = {
  rounds: number
  tasks: number
  connections: number
  /** Each figure's median over the rounds (peak RSS: the highest). */
  median: Partial<Record<System, Figures>>
  /** Tasklane divided by each peer, round by round, and the medians of those. */
  tasklaneOver: Partial<Record<Exclude<System, 'tasklane'>, Ratios>>
  runs: PeerRun[]
}

export const LABELS: Record<System, string> = {
  tasklane: 'Tasklane',
  baseline: 'Tasklane baseline (--baseline)',
  byHand: 'by hand (Fastify + postgres.js + BullMQ)',
  pgBoss1: 'pg-boss, batch 1',
  pgBoss50: 'pg-boss, batch 50',
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return 0
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const round3 = (n: number) => Math.round(n * 1000) / 1000

export function summarizePeers (runs: PeerRun[], settings: { rounds: number, tasks: number, connections: number }): PeersResult {
  const present = SYSTEMS.filter((s) => runs.some((r) => r.system === s))
  const of = (system: System) => runs.filter((r) => r.system === system)
  const figures = (system: System): Figures => {
    const rs = of(system)
    const m = (pick: (r: PeerRun) => number) => round3(median(rs.map(pick)))
    return {
      tasksPerSec: Math.round(median(rs.map((r) => r.tasksPerSec))),
      cpuMsPerTask: {
        api: m((r) => r.cpuMsPerTask.api), worker: m((r) => r.cpuMsPerTask.worker), postgres: m((r) => r.cpuMsPerTask.postgres),
        redis: m((r) => r.cpuMsPerTask.redis), total: m((r) => r.cpuMsPerTask.total),
      },
      redisCommandsPerTask: m((r) => r.redisCommandsPerTask),
      peakRssMb: { api: Math.max(0, ...rs.map((r) => r.peakRssMb.api)), worker: Math.max(0, ...rs.map((r) => r.peakRssMb.worker)) },
      requestP99Ms: m((r) => r.requestLatencyMs.p99),
      httpErrors: rs.reduce((n, r) => n + r.httpErrors, 0),
    }
  }
  const ratios = (peer: System): Ratios => {
    const pairs = of('tasklane').flatMap((t) => {
      const p = runs.find((r) => r.system === peer && r.round === t.round)
      return p ? [[t, p] as const] : []
    })
    const tasksPerSec = pairs.map(([t, p]) => round3(t.tasksPerSec / Math.max(1, p.tasksPerSec)))
    const cpuPerTask = pairs.map(([t, p]) => round3(t.cpuMsPerTask.total / Math.max(0.001, p.cpuMsPerTask.total)))
    return { tasksPerSec, cpuPerTask, medianTasksPerSec: round3(median(tasksPerSec)), medianCpuPerTask: round3(median(cpuPerTask)) }
  }
  return {
    ...settings,
    median: Object.fromEntries(present.map((s) => [s, figures(s)])),
    tasklaneOver: Object.fromEntries(present.includes('tasklane') ? present.filter((s) => s !== 'tasklane').map((s) => [s, ratios(s)]) : []),
    runs,
  }
}

export function formatPeers (p: PeersResult, table: (head: string[], rows: (string | number)[][]) => string): string {
  const out = [`Beside its peers (${p.tasks} echo tasks by single POSTs over ${p.connections} connections, one API and one worker process each, ${p.rounds} interleaved rounds; medians)`]
  out.push(table(
    ['system', 'tasks/s', 'CPU ms/task API / worker / Postgres / Redis = sum', 'Redis cmds/task', 'peak RSS MB API / worker', 'POST p99 ms', 'errors'],
    SYSTEMS.flatMap((s) => {
      const f = p.median[s]
      if (!f) return []
      const c = f.cpuMsPerTask
      return [[LABELS[s], f.tasksPerSec, `${c.api} / ${c.worker} / ${c.postgres} / ${c.redis} = ${c.total}`, f.redisCommandsPerTask,
        `${f.peakRssMb.api} / ${f.peakRssMb.worker}`, f.requestP99Ms, f.httpErrors]]
    }),
  ))
  const line = (peer: Exclude<System, 'tasklane'>) => {
    const r = p.tasklaneOver[peer]
    if (!r) return []
    return [ `Tasklane ÷ ${LABELS[peer]}: tasks/s ${r.medianTasksPerSec} (rounds ${r.tasksPerSec.join(', ')}); CPU per task ${r.medianCpuPerTask} (rounds ${r.cpuPerTask.join(', ')})`]
  }
  out.push('', ...line('baseline'), ...line('byHand'), ...line('pgBoss1'), ...line('pgBoss50'))
  return out.join('\n')
}

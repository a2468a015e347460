import { setTimeout as sleep } from 'node:timers/promises'
import type postgres from 'postgres'
import { spawnService } from './fault-services.ts'

type Teardown = { teardown: (fn: () => unknown) => void }

export type FleetProcess = Awaited<ReturnType<typeof spawnService>> & { metricsPort: number, apiPort?: number }

/** API and worker processes, as in production, on one database and Redis; `stop` ends them all. */
export async function startFleet (t: Teardown, env: Record<string, string>, counts: { apis: number, workers: number }) {
  const starting: Promise<FleetProcess>[] = []
  for (let i = 0; i < counts.apis; i++) {
    let apiPort = 0
    starting.push(spawnService(t, 'services/api/server.ts', env, (line) => {
      const at = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(String(line.msg))
      if (at) apiPort = Number(at[1])
      return line.msg === 'metrics listener started'
    }).then((p) => ({ ...p, metricsPort: p.line.metricsPort as number, apiPort })))
  }
  for (let i = 0; i < counts.workers; i++) {
    starting.push(spawnService(t, 'services/worker/main.ts', env, (line) => line.msg === 'worker started')
      .then((p) => ({ ...p, metricsPort: p.line.opsPort as number })))
  }
  const processes = await Promise.all(starting)
  return {
    processes,
    apiUrl: `http://127.0.0.1:${processes.find((p) => p.apiPort)?.apiPort}`,
    /** SIGTERM to every process; resolves once all have exited. */
    async stop (): Promise<void> {
      await Promise.all(processes.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        if (await Promise.race([exited.then(() => true), sleep(8_000, false)])) return
        child.kill('SIGKILL')
        await exited
      }))
    },
  }
}

export type ScheduledTask = { id: string, scheduledFor: Date, createdAt: Date, startedAt: Date | null, finishedAt: Date | null, status: string }

/** A schedule's tasks, in due-time order. */
export async function scheduledTasks (sql: postgres.Sql, scheduleId: string): Promise<ScheduledTask[]> {
  const rows = await sql<Record<string, string | null>[]>`
    select id, scheduled_for, created_at, started_at, finished_at, status from tasks
    where schedule_id = ${scheduleId} order by scheduled_for`
  const date = (v: string | null | undefined) => (v == null ? null : new Date(v))
  return rows.map((r) => ({
    id: r.id!, status: r.status!, scheduledFor: date(r.scheduled_for)!, createdAt: date(r.created_at)!,
    startedAt: date(r.started_at), finishedAt: date(r.finished_at),
  }))
}

/** Posts a schedule to an API process and returns its id. */
export async function postSchedule (apiUrl: string, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${apiUrl}/v1/schedules`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 201) throw new Error(`schedule not created: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { id: string }).id
}

import type { Redis } from 'ioredis'
import type postgres from 'postgres'

export type ReadinessReport = { status: 'ok' | 'unavailable', checks: Record<string, 'ok' | string> }

function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** The report is public: a driver's message can carry a host name or address, a code cannot. */
function failureText (err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return `unavailable (${code})`
  return (err as Error | null)?.message?.startsWith('no answer within') ? 'timeout' : 'unavailable'
}

/**
 * Readiness: can this process do useful work right now? Postgres and Redis must answer
 * quickly and the process must not be draining. Liveness never calls this, so an outage of
 * a dependency takes pods out of the load balancer without restarting them.
 */
export function createReadiness (deps: { sql: postgres.Sql, redis: Redis, timeoutMs?: number, extraChecks?: () => Record<string, string> }) {
  const timeoutMs = deps.timeoutMs ?? 1_000
  let draining = false
  const laterChecks: (() => Record<string, string>)[] = []

  async function check (name: string, probe: () => Promise<unknown>): Promise<[string, string]> {
    try {
      await withTimeout(probe(), timeoutMs)
      return [name, 'ok']
    } catch (err) {
      return [name, failureText(err)]
    }
  }

  return {
    startDraining: () => { draining = true },
    isDraining: () => draining,
    /** A check known only once the app exists (e.g. load shedding); 'ok' or why not. */
    addCheck: (check: () => Record<string, string>) => { laterChecks.push(check) },
    async report (): Promise<ReadinessReport> {
      const results = await Promise.all([
        check('postgres', () => deps.sql`select 1`),
        check('redis', () => deps.redis.ping()),
      ])
      const checks: Record<string, string> = Object.fromEntries(results)
      checks.draining = draining ? 'draining' : 'ok'
      Object.assign(checks, deps.extraChecks?.() ?? {})
      for (const later of laterChecks) Object.assign(checks, later())
      const ok = Object.values(checks).every((v) => v === 'ok')
      return { status: ok ? 'ok' : 'unavailable', checks }
    },
  }
}

export type Readiness = ReturnType<typeof createReadiness>

import { setTimeout as sleep } from 'node:timers/promises'
import type postgres from 'postgres'

export type VacuumWindow = { vacuums: number, longestGapSec: number, mostDead: number }

/**
 * Watches one table's vacuums (pg_stat_user_tables, four times a second): per window, how many
 * vacuums ended, the longest time between two of them (or since the last one, if none ended
 * since), and the most dead tuples seen. A B-tree keeps the most entries it held between two
 * vacuums, so the longest gap is what sets the size of a churned table's indexes.
 */
export function watchVacuums (sql: postgres.Sql, table: string, everyMs = 250) {
  let lastCount = -1
  let lastAt = performance.now()
  let window: VacuumWindow = { vacuums: 0, longestGapSec: 0, mostDead: 0 }
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      try {
        const [row] = await sql<{ count: number, dead: number }[]>`
          select (vacuum_count + autovacuum_count)::int as count, n_dead_tup::int as dead
          from pg_stat_user_tables where relid = ${table}::regclass`
        const now = performance.now()
        if (row) {
          if (lastCount >= 0 && row.count > lastCount) {
            window.vacuums += row.count - lastCount
            window.longestGapSec = Math.max(window.longestGapSec, (now - lastAt) / 1000)
            lastAt = now
          }
          if (lastCount < 0) lastAt = now
          lastCount = row.count
          window.mostDead = Math.max(window.mostDead, row.dead)
        }
      } catch { /* the database goes away at the end of the run */ }
      await sleep(everyMs)
    }
  })()
  return {
    /** This window's figures; the next window starts now. */
    take (): VacuumWindow {
      const open = (performance.now() - lastAt) / 1000
      const taken = { ...window, longestGapSec: Math.round(Math.max(window.longestGapSec, open) * 10) / 10 }
      window = { vacuums: 0, longestGapSec: 0, mostDead: 0 }
      return taken
    },
    async stop (): Promise<void> { stopped = true; await loop },
  }
}

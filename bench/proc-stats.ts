import { readFileSync } from 'node:fs'

// Linux exposes per-process CPU time in clock ticks; 100 per second on every kernel Node runs on.
const TICKS_PER_SECOND = 100

/** User + system CPU seconds a process has used so far, or undefined when it is gone or not ours to read. */
export function cpuSeconds (pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
  } catch {
    return undefined
  }
}

function statusMb (pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
    return match ? Math.round(Number(match[1]) / 1024) : undefined
  } catch {
    return undefined
  }
}

/** Peak resident set size (VmHWM) in MiB. */
export const peakRssMb = (pid: number): number | undefined => statusMb(pid, 'VmHWM')

/** Resident set size now (VmRSS) in MiB. */
export const rssMb = (pid: number): number | undefined => statusMb(pid, 'VmRSS')

/**
 * CPU used by a changing set of processes over a window. Postgres backends come and go with the
 * pools, so the set is re-read on every sample and the last value seen for each pid is kept: a
 * backend that exits mid-window still counts up to its last sample.
 */
export function createCpuMeter (listPids: () => Promise<number[]>, sampleMs = 500) {
  const first = new Map<number, number>()
  const last = new Map<number, number>()
  let timer: NodeJS.Timeout | undefined
  let started = false

  async function sample (): Promise<void> {
    let pids: number[]
    try {
      pids = await listPids()
    } catch {
      return
    }
    for (const pid of pids) {
      const seconds = cpuSeconds(pid)
      if (seconds === undefined) continue
      // A pid first seen after the window opened started inside it: it counts from zero.
      if (!first.has(pid)) first.set(pid, started ? 0 : seconds)
      last.set(pid, seconds)
    }
  }

  return {
    async start (): Promise<void> {
      await sample()
      started = true
      timer = setInterval(() => { void sample() }, sampleMs)
      timer.unref()
    },
    /** CPU seconds used by the set since `start`. */
    async stop (): Promise<number> {
      clearInterval(timer)
      await sample()
      let total = 0
      for (const [pid, end] of last) total += end - (first.get(pid) ?? end)
      return total
    },
  }
}

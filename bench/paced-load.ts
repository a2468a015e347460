import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'
import { percentiles, type LoadResult } from './http-load.ts'

/**
 * Open-loop load at an even pace: one request every 1/rate seconds over keep-alive
 * connections, whether or not earlier ones have answered. (autocannon's rate limit sends
 * each connection's quota in a burst at the top of every second, which measures bursts.)
 */
export async function runPacedLoad (options: {
  url: string
  body: string
  headers?: Record<string, string>
  ratePerSec: number
  durationSec: number
  warmupSec: number
  connections: number
  onWarm: () => void
}): Promise<LoadResult> {
  const url = new URL(options.url)
  const pool = new Pool(url.origin, { connections: options.connections, pipelining: 1 })
  const latencies: number[] = []
  const statusCodes: Record<string, number> = {}
  let errors = 0
  let non2xx = 0
  const inFlight = new Set<Promise<void>>()
  const start = performance.now()
  const warmAt = start + options.warmupSec * 1000
  const endAt = warmAt + options.durationSec * 1000
  let warm = false
  let sent = 0

  function fire (measured: boolean): void {
    const began = performance.now()
    const request = pool.request({ path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json', ...options.headers }, body: options.body })
      .then(async (res) => {
        await res.body.dump()
        if (!measured) return
        latencies.push(performance.now() - began)
        statusCodes[res.statusCode] = (statusCodes[res.statusCode] ?? 0) + 1
        if (res.statusCode >= 300) non2xx++
      }, () => { if (measured) errors++ })
      .finally(() => inFlight.delete(request))
    inFlight.add(request)
  }

  for (;;) {
    const now = performance.now()
    if (now >= endAt) break
    if (!warm && now >= warmAt) { warm = true; options.onWarm() }
    // Send what is due by now, so a late timer catches up instead of lowering the rate.
    const due = Math.floor(((now - start) / 1000) * options.ratePerSec)
    while (sent < due) { fire(warm); sent++ }
    await sleep(1)
  }
  await Promise.all(inFlight)
  await pool.close()
  const seconds = options.durationSec
  return {
    requests: latencies.length,
    requestsPerSec: Math.round(latencies.length / seconds),
    durationSec: seconds,
    latencyMs: percentiles(latencies),
    errors,
    non2xx,
    statusCodes,
  }
}

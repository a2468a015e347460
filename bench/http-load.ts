import autocannon, { type Result } from 'autocannon'

export type Percentiles = { p50: number, p95: number, p99: number }

/** Nearest-rank percentiles of a sample, rounded to 0.1 ms; zeros when the sample is empty. */
export function percentiles (values: ArrayLike<number>): Percentiles {
  const sorted = Float64Array.from(values).sort()
  const at = (p: number): number => {
    if (sorted.length === 0) return 0
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))
    return Math.round(sorted[rank]! * 10) / 10
  }
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) }
}

export type LoadResult = {
  requests: number
  requestsPerSec: number
  durationSec: number
  latencyMs: Percentiles
  errors: number
  non2xx: number
  statusCodes: Record<string, number>
}

/**
 * Drives one route as hard as `connections` keep-alive connections allow, for `durationSec`, or
 * until `amount` requests have been answered when it is given.
 * Latencies come from every response, not autocannon's histogram, so p95 exists.
 */
export async function runLoad (options: {
  url: string
  body: string
  headers?: Record<string, string>
  connections: number
  durationSec: number
  amount?: number | undefined
  /** Called once, after `warmupSec`, so the caller can open its measurement window. */
  onWarm?: (() => void) | undefined
  warmupSec?: number
}): Promise<LoadResult> {
  const latencies: number[] = []
  let measuring = !options.onWarm
  let firstAt = 0
  const warmTimer = options.onWarm
    ? setTimeout(() => { measuring = true; firstAt = performance.now(); options.onWarm!() }, (options.warmupSec ?? 0) * 1000)
    : undefined
  if (!options.onWarm) firstAt = performance.now()
  const result = await new Promise<Result>((resolve, reject) => {
    const instance = autocannon({
      url: options.url,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...options.headers },
      body: options.body,
      connections: options.connections,
      ...(options.amount ? { amount: options.amount } : { duration: options.durationSec + (options.warmupSec ?? 0) }),
      timeout: 30,
    }, (err, res) => (err ? reject(err) : resolve(res)))
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
      if (measuring) latencies.push(responseTime)
    })
  })
  clearTimeout(warmTimer)
  const durationSec = (performance.now() - firstAt) / 1000
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]))
  return {
    requests: latencies.length,
    requestsPerSec: Math.round(latencies.length / durationSec),
    durationSec: Math.round(durationSec * 10) / 10,
    latencyMs: percentiles(latencies),
    errors: result.errors,
    non2xx: result.non2xx,
    statusCodes,
  }
}

// The part of autocannon's programmatic API the benchmark uses (the package ships no types).
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  export type Options = {
    url: string
    method?: string
    headers?: Record<string, string>
    body?: string | Buffer
    connections?: number
    pipelining?: number
    duration?: number
    amount?: number
    overallRate?: number
    timeout?: number
  }

  export type Result = {
    requests: { average: number, total: number }
    latency: { p50: number, p99: number, average: number }
    errors: number
    timeouts: number
    non2xx: number
    duration: number
    statusCodeStats: Record<string, { count: number }>
  }

  export type Instance = EventEmitter & { stop: () => void }

  function autocannon (options: Options, callback: (err: Error | null, result: Result) => void): Instance
  export default autocannon
}

import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

type Teardown = { teardown: (fn: () => unknown) => void }

export type Execution = { key: string, nonce: string, at: number }

/**
 * Where the drills' tasks leave a trace outside the tasks table: an HTTP server on 127.0.0.1
 * that an `http` task POSTs to. Every request that arrives is one execution of a handler; it
 * is recorded under the task's key (from the path) with a fresh nonce, which the answer
 * carries, so a stored result can be traced back to the execution that produced it.
 * `?ms=N` holds the answer N ms, so a task can be made slow without the `sleep` type.
 */
export async function startExecutionReceiver (t: Teardown) {
  const byKey = new Map<string, Execution[]>()
  let total = 0

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://receiver')
    const match = /^\/exec\/([^/]+)$/.exec(url.pathname)
    if (req.method !== 'POST' || !match) { res.writeHead(404).end(); return }
    // Recorded on arrival: the handler ran, whether or not it lives to read the answer.
    const execution = { key: decodeURIComponent(match[1]!), nonce: randomUUID(), at: Date.now() }
    const list = byKey.get(execution.key) ?? []
    list.push(execution)
    byKey.set(execution.key, list)
    total++
    req.resume()
    const ms = Number(url.searchParams.get('ms') ?? 0)
    const answer = () => {
      if (res.destroyed) return
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ key: execution.key, nonce: execution.nonce }))
    }
    if (ms > 0) void sleep(ms).then(answer)
    else req.once('end', answer)
  })
  // Longer than the worker's keep-alive (10 s): an idle socket closed under a request being
  // sent is an "other side closed" error, a retry that is noise to the drill.
  server.keepAliveTimeout = 30_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))

  const base = `http://127.0.0.1:${port}`
  return {
    base,
    /** The create body of an `http` task that records one execution under `key` per run. */
    task (key: string, options: { ms?: number, maxAttempts?: number } = {}): Record<string, unknown> {
      return {
        type: 'http',
        payload: { method: 'POST', url: `${base}/exec/${encodeURIComponent(key)}${options.ms ? `?ms=${options.ms}` : ''}`, body: { key } },
        maxAttempts: options.maxAttempts ?? 10,
        backoff: { type: 'fixed', delayMs: 50 },
      }
    },
    /** `n` such tasks keyed `<prefix><i>`, slow `minMs`..`maxMs` (spread evenly). */
    tasks (prefix: string, n: number, minMs = 0, maxMs = minMs): { key: string, body: Record<string, unknown> }[] {
      return Array.from({ length: n }, (_, i) => {
        const key = `${prefix}${i}`
        const ms = minMs + ((i * 7919) % (maxMs - minMs + 1))
        return { key, body: this.task(key, { ms }) }
      })
    },
    executions: (key: string): Execution[] => byKey.get(key) ?? [],
    get total (): number { return total },
  }
}

export type ExecutionReceiver = Awaited<ReturnType<typeof startExecutionReceiver>>

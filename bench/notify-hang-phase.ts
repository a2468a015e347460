import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { EndToEndFigures, Route } from './bench-phases.ts'
import type { Percentiles } from './http-load.ts'

export type NotifyHangFigures = {
  route: Route
  workers: number
  without: EndToEndFigures
  /** The same load with a notification endpoint for task.completed that never answers. */
  withHangingEndpoint: EndToEndFigures
  /** Completions per second with the hanging endpoint over those without. */
  ratio: number
  /** Connections the hanging endpoint accepted during its run (it answered none), and the most it held open at once. */
  hangingConnections: { total: number, peakOpen: number }
}

const WORKER_ENV = { TASKLANE_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' }

/** A TCP server that accepts every connection and never writes a byte: a notification endpoint that hangs. */
async function startHangingEndpoint () {
  const sockets = new Set<Socket>()
  let total = 0
  let peakOpen = 0
  const server = createServer((socket) => {
    total++
    sockets.add(socket)
    peakOpen = Math.max(peakOpen, sockets.size)
    socket.on('error', () => {})
    socket.once('close', () => sockets.delete(socket))
    socket.resume()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    connections: () => ({ total, peakOpen }),
    close () {
      for (const socket of sockets) socket.destroy()
      server.close()
    },
  }
}

/**
 * The end-to-end phase twice, `route` with `workers` worker processes: without notification
 * endpoints, then with one endpoint for task.completed whose receiver accepts the connection
 * and hangs, so every completion owes a delivery that never succeeds. The workers of both runs
 * allow 127.0.0.1 as a webhook host, so the endpoint is the only difference.
 */
export async function runNotifyHang (deps: {
  apiUrl: string
  route: Route
  workers: number
  endToEnd: (route: Route, workers: number, rate: undefined, workerEnv: Record<string, string>) => Promise<EndToEndFigures>
}): Promise<NotifyHangFigures> {
  const without = await deps.endToEnd(deps.route, deps.workers, undefined, WORKER_ENV)
  const endpoint = await startHangingEndpoint()
  const headers = { 'content-type': 'application/json' }
  const created = await fetch(`${deps.apiUrl}/v1/webhook-endpoints`, {
    method: 'POST', headers, body: JSON.stringify({ url: endpoint.url, events: ['task.completed'] }),
  })
  if (created.status !== 201) throw new Error(`e2e-notify: registering the endpoint failed with ${created.status}: ${await created.text()}`)
  const { id } = await created.json() as { id: string }
  try {
    const withHangingEndpoint = await deps.endToEnd(deps.route, deps.workers, undefined, WORKER_ENV)
    return {
      route: deps.route,
      workers: deps.workers,
      without,
      withHangingEndpoint,
      ratio: without.tasksPerSec > 0 ? Math.round((withHangingEndpoint.tasksPerSec / without.tasksPerSec) * 100) / 100 : 0,
      hangingConnections: endpoint.connections(),
    }
  } finally {
    // Later phases run without it; what it was still owed goes with it.
    await (await fetch(`${deps.apiUrl}/v1/webhook-endpoints/${id}`, { method: 'DELETE' })).arrayBuffer()
    endpoint.close()
  }
}

const pct = (p: Percentiles): string => `${p.p50} / ${p.p95} / ${p.p99}`

/** The report's table: each route's two runs side by side. */
export function formatNotifyHang (runs: NotifyHangFigures[], table: (head: string[], rows: (string | number)[][]) => string): string {
  const rows = runs.flatMap((r) => [
    [`${r.route}, no endpoint`, r.workers, r.without.tasksPerSec, pct(r.without.pickupMs), pct(r.without.endToEndMs), r.without.unfinishedAfterDrain, '', ''],
    [`${r.route}, hanging endpoint`, r.workers, r.withHangingEndpoint.tasksPerSec, pct(r.withHangingEndpoint.pickupMs),
      pct(r.withHangingEndpoint.endToEndMs), r.withHangingEndpoint.unfinishedAfterDrain, r.ratio, `${r.hangingConnections.peakOpen} / ${r.hangingConnections.total}`],
  ])
  return [
    'End to end beside a notification endpoint that never answers (task.completed; every completion owes it a delivery)',
    'Latencies are of the tasks created in the window that finished within a few seconds after it (none when a backlog outlasts that).',
    table(['load', 'workers', 'completed/s', 'pickup ms p50 / p95 / p99', 'end-to-end ms p50 / p95 / p99', 'window\'s tasks unfinished', 'ratio', 'connections open at once / in all'], rows),
  ].join('\n')
}

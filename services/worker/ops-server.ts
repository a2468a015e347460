import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import type { Readiness } from '../core/readiness.ts'

/**
 * The worker's internal HTTP port: /metrics for Prometheus, /healthz and /readyz for the
 * kubelet. Plain node:http keeps Fastify out of the worker.
 */
export function createOpsServer (deps: { registry: Registry, readiness: Readiness }) {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(body)
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'application/json', '{"status":"method not allowed"}')
    if (path === '/healthz') return send(200, 'application/json', '{"status":"ok"}')
    if (path === '/readyz') {
      deps.readiness.report().then(
        (report) => send(report.status === 'ok' ? 200 : 503, 'application/json', JSON.stringify(report)),
        () => send(503, 'application/json', '{"status":"unavailable"}'))
      return
    }
    if (path === '/metrics') {
      deps.registry.metrics().then(
        (text) => send(200, deps.registry.contentType, text),
        () => send(500, 'text/plain', 'metrics collection failed\n'))
      return
    }
    return send(404, 'application/json', '{"status":"not found"}')
  })

  return {
    async listen (port: number, host = '0.0.0.0'): Promise<number> {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => { server.off('error', reject); resolve() })
      })
      return (server.address() as AddressInfo).port
    },
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections() }),
  }
}

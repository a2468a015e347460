import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'

/**
 * The API's internal port (METRICS_PORT): /metrics only. Kept off the public listener so
 * metrics are reachable by Prometheus inside the cluster but not through the load balancer.
 */
export function createMetricsListener (deps: { registry: Registry }) {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    if (path !== '/metrics') return send(404, 'application/json', '{"status":"not found"}')
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'application/json', '{"status":"method not allowed"}')
    deps.registry.metrics().then(
      (text) => send(200, deps.registry.contentType, text),
      () => send(500, 'text/plain', 'metrics collection failed\n'))
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

export type MetricsListener = ReturnType<typeof createMetricsListener>

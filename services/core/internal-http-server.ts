import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import type { Readiness } from './readiness.ts'

export type InternalResponse = { status: number, type: string, body: string }
export type InternalRoute = () => Promise<InternalResponse> | InternalResponse

/**
 * A tiny GET-only server for the internal port (METRICS_PORT) of either process: metrics and
 * probes, kept off the public listener and free of Fastify so the worker need not load it.
 */
export function createInternalHttpServer (routes: Record<string, InternalRoute>) {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const send = ({ status, type, body }: InternalResponse) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    const route = routes[path]
    if (!route) return send({ status: 404, type: 'application/json', body: '{"status":"not found"}' })
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send({ status: 405, type: 'application/json', body: '{"status":"method not allowed"}' })
    }
    Promise.resolve().then(route).then(send, () => send({ status: 500, type: 'text/plain', body: 'failed\n' }))
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

export const metricsRoute = (registry: Registry): InternalRoute => async () =>
  ({ status: 200, type: registry.contentType, body: await registry.metrics() })

export const healthzRoute: InternalRoute = () => ({ status: 200, type: 'application/json', body: '{"status":"ok"}' })

export const readyzRoute = (readiness: Readiness): InternalRoute => async () => {
  const report = await readiness.report().catch(() => ({ status: 'unavailable' }))
  return { status: report.status === 'ok' ? 200 : 503, type: 'application/json', body: JSON.stringify(report) }
}

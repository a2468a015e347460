import type { Server } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import { bootProcess } from '../core/process-boot.ts'
import { buildServer } from './build-server.ts'
import { createMetricsListener } from './metrics-listener.ts'
import { openApiDeps } from './open-deps.ts'

const { config, log } = bootProcess('tasklane-api')
const deps = openApiDeps(config, log)
const server = await buildServer(deps, log)
const metricsListener = createMetricsListener({ registry: deps.metrics.registry })

/** Resolves when the server has no open connection, or after `ms`. */
async function connectionsGone (http: Server, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const open = await new Promise<number>((resolve) => http.getConnections((err, n) => resolve(err ? 0 : n)))
    if (open === 0) return
    await sleep(50)
  }
}

closeWithGrace({ delay: config.TASKLANE_SHUTDOWN_GRACE_MS, logger: log, skip: ['unhandledRejection'] }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'shutting down after an error')
  else log.info({ signal }, 'shutting down')
  // Readiness goes 503 first so the load balancer stops sending, then in-flight requests finish.
  deps.readiness.startDraining()
  // Keep serving a moment while the load balancer sees /readyz fail: every response now says
  // `Connection: close` (build-server.ts), so keep-alive clients leave after their next answer
  // instead of racing a socket the server closes under a request they just sent.
  await connectionsGone(server.server, Math.min(config.TASKLANE_DRAIN_DELAY_MS, config.TASKLANE_SHUTDOWN_GRACE_MS / 2))
  // Node closes only the keep-alive sockets idle at the moment of close; a socket whose request
  // finishes afterwards would hold the server open until its keep-alive timeout: sweep them.
  const sweep = setInterval(() => server.server.closeIdleConnections(), 100)
  await server.close()
  clearInterval(sweep)
  log.info('http server closed')
  await metricsListener.close()
  await deps.close()
  log.info('connections closed')
})

await server.listen({ host: config.HOST, port: config.PORT })
deps.scheduleLoop.start()
await deps.admission.start()
const metricsPort = await metricsListener.listen(config.METRICS_PORT, config.HOST)
log.info({ metricsPort }, 'metrics listener started')

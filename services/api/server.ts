import closeWithGrace from 'close-with-grace'
import { ConfigError, loadConfig } from '../core/config.ts'
import { createLogger } from '../core/log.ts'
import { buildServer } from './build-server.ts'
import { createMetricsListener } from './metrics-listener.ts'
import { openApiDeps } from './open-deps.ts'

let config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`tasklane-api: ${err.message}\n`)
  process.exit(78)
}

const log = createLogger(config, { service: 'tasklane-api' })
const deps = openApiDeps(config, log)
const server = await buildServer(deps, log)
const metricsListener = createMetricsListener({ registry: deps.metrics.registry })

closeWithGrace({ delay: config.TASKLANE_SHUTDOWN_GRACE_MS, logger: log }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'shutting down after an error')
  else log.info({ signal }, 'shutting down')
  // Readiness goes 503 first so the load balancer stops sending, then in-flight requests finish.
  deps.readiness.startDraining()
  // Node closes only the keep-alive sockets idle at the moment of close; a socket whose request
  // finishes afterwards would hold the server open until its keep-alive timeout. Responses
  // sent while draining say `Connection: close` (build-server.ts), and this sweeps the rest.
  const sweep = setInterval(() => server.server.closeIdleConnections(), 100)
  await server.close()
  clearInterval(sweep)
  log.info('http server closed')
  await metricsListener.close()
  await deps.close()
  log.info('connections closed')
})

await server.listen({ host: config.HOST, port: config.PORT })
const metricsPort = await metricsListener.listen(config.METRICS_PORT, config.HOST)
log.info({ metricsPort }, 'metrics listener started')

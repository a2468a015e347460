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
  await server.close()
  await metricsListener.close()
  await deps.close()
})

await server.listen({ host: config.HOST, port: config.PORT })
const metricsPort = await metricsListener.listen(config.METRICS_PORT, config.HOST)
log.info({ metricsPort }, 'metrics listener started')

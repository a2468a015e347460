import closeWithGrace from 'close-with-grace'
import { ConfigError, loadConfig } from '../core/config.ts'
import { guardUnhandledRejections } from '../core/db/driver-rejection-guard.ts'
import { limitHeapGrowth } from '../core/heap-growth.ts'
import { createLogger } from '../core/log.ts'
import { startWorker } from './start-worker.ts'

let config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`tasklane-worker: ${err.message}\n`)
  process.exit(78)
}
limitHeapGrowth(config.TASKLANE_HEAP_GROWTH_PERCENT)

const log = createLogger(config, { service: 'tasklane-worker' })
// A killed Postgres backend must not stop the worker through the driver's dropped promise.
guardUnhandledRejections(log)
const worker = await startWorker(config, log)

// close-with-grace gets a little more than the drain grace, so the drain decides what to
// release and the process still exits on its own.
closeWithGrace({ delay: config.TASKLANE_SHUTDOWN_GRACE_MS + 5_000, logger: log, skip: ['unhandledRejection'] }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'shutting down after an error')
  else log.info({ signal }, 'shutting down')
  await worker.stop()
})

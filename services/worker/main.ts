import closeWithGrace from 'close-with-grace'
import { bootProcess, exitOnConfigError } from '../core/process-boot.ts'
import { startWorker } from './start-worker.ts'

const { config, log } = bootProcess('tasklane-worker')
const worker = await startWorker(config, log).catch((err: unknown) => exitOnConfigError('tasklane-worker', err))

// close-with-grace gets a little more than the drain grace, so the drain decides what to
// release and the process still exits on its own.
closeWithGrace({ delay: config.TASKLANE_SHUTDOWN_GRACE_MS + 5_000, logger: log, skip: ['unhandledRejection'] }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'shutting down after an error')
  else log.info({ signal }, 'shutting down')
  await worker.stop()
})

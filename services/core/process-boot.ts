import { ConfigError, loadConfig, type Config } from './config.ts'
import { guardUnhandledRejections } from './db/driver-rejection-guard.ts'
import { limitHeapGrowth } from './heap-growth.ts'
import { createSecretBox } from './secrets/secret-box.ts'
import { createLogger, type Logger } from './log.ts'

/**
 * What both processes do first: read the configuration (a bad variable ends the process with
 * one line and exit code 78, EX_CONFIG), apply the heap growth setting, open the logger, and
 * keep a killed Postgres backend from stopping the process through the driver's dropped
 * promise. Give close-with-grace `skip: ['unhandledRejection']`.
 */
export function bootProcess (service: 'tasklane-api' | 'tasklane-worker'): { config: Config, log: Logger } {
  let config: Config
  try {
    config = loadConfig()
    createSecretBox(config) // the encryption keys are configuration too: checked here, once
  } catch (err) {
    exitOnConfigError(service, err)
  }
  limitHeapGrowth(config.TASKLANE_HEAP_GROWTH_PERCENT)
  const log = createLogger(config, { service })
  guardUnhandledRejections(log)
  return { config, log }
}

/** A configuration error found later (a queue name only the worker can check): one line, exit 78. */
export function exitOnConfigError (service: string, err: unknown): never {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`${service}: ${err.message}\n`)
  process.exit(78)
}

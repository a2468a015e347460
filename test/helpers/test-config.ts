import { loadConfig, type Config } from '../../services/core/config.ts'
import { createLogger, type Logger } from '../../services/core/log.ts'
import { uniqueName } from './services.ts'

/** A configuration for one test: its own database and BullMQ prefix, ephemeral ports. */
export function testConfig (databaseUrl: string, redisUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    PORT: '0',
    METRICS_PORT: '0',
    HOST: '127.0.0.1',
    TASKLANE_QUEUE_PREFIX: uniqueName('tlt'),
    TASKLANE_AUTH: 'disabled',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    TASKLANE_SHUTDOWN_GRACE_MS: '2000',
    // Load shedding on event-loop delay is off unless a test asks for it: on a busy machine a
    // delayed loop would turn any test's requests into 503s. Its own test turns it on.
    TASKLANE_MAX_EVENT_LOOP_DELAY_MS: '0',
    ...env,
  })
}

export const testLogger = (config: Config, service: string): Logger => createLogger(config, { service })

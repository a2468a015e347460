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
    ...env,
  })
}

export const testLogger = (config: Config, service: string): Logger => createLogger(config, { service })

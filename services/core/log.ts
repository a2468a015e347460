import { pino, type Logger, type LoggerOptions } from 'pino'
import type { Config } from './config.ts'

export type { Logger }

/** One logger per process; JSON lines, pretty only when a person is watching a terminal. */
export function createLogger (config: Pick<Config, 'LOG_LEVEL'>, base: Record<string, unknown>): Logger {
  const options: LoggerOptions = {
    level: config.LOG_LEVEL,
    base,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.authorization'], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  if (process.stdout.isTTY) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } })
  }
  return pino(options)
}

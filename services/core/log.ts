import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'
import { createRequire } from 'node:module'
import type { Config } from './config.ts'
import { builtinTaskTypes } from './task-types/builtin-types.ts'
import type { TaskTypeDefinition } from './task-types/task-type.ts'

export type { Logger }

// pino-pretty is a development dependency: an image run with a terminal attached has none.
function prettyAvailable (): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty')
    return true
  } catch {
    return false
  }
}

/**
 * Where a task payload's secret fields (TaskTypeDefinition.secretFields) can appear in a log
 * line: a payload logged on its own, inside a task or job, or inside a request body.
 */
export function secretPayloadPaths (types: readonly Pick<TaskTypeDefinition, 'secretFields'>[]): string[] {
  const fields = [...new Set(types.flatMap((t) => t.secretFields ?? []))]
  return fields.flatMap((f) => {
    const key = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(f) ? `.${f}` : `[${JSON.stringify(f)}]`
    return [`payload${key}`, `*.payload${key}`, `*.*.payload${key}`]
  })
}

/** One logger per process; JSON lines, pretty only when a person is watching a terminal. */
export function createLogger (config: Pick<Config, 'LOG_LEVEL'>, base: Record<string, unknown>, more: {
  /** Whose secret payload fields to redact; the built-in types unless told otherwise. */
  taskTypes?: readonly Pick<TaskTypeDefinition, 'secretFields'>[]
  /** Where the lines go instead of stdout. */
  destination?: DestinationStream
} = {}): Logger {
  const options: LoggerOptions = {
    level: config.LOG_LEVEL,
    base,
    redact: {
      paths: [
        'req.headers.authorization', 'headers.authorization', '*.authorization', 'req.headers.cookie', '*.headers.cookie',
        ...secretPayloadPaths(more.taskTypes ?? builtinTaskTypes),
      ],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  const logger = more.destination
    ? pino(options, more.destination)
    : process.stdout.isTTY && prettyAvailable()
      ? pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } })
      : pino(options, bufferedStdout())
  return withPrimitivesUnredacted(logger)
}

/**
 * stdout written in blocks of at least 4 KiB instead of a write call per line: under load
 * the access log and the attempt lines made one system call each, a tenth of the worker's
 * CPU time. Lines wait at most a quarter of a second, and pino writes what is left when the
 * process exits, so only a SIGKILL loses them (at most one block).
 */
function bufferedStdout (): DestinationStream {
  return pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 250 })
}

/**
 * With a redact path that starts with `*`, pino runs every value of every line and of every
 * child binding through its wildcard redactor, strings and numbers included, and that
 * redactor parses each path again on every call. A task's log lines cost 13 us instead of
 * 3.5 us, and the redactor made a fifth of the worker's allocations (measured under load).
 * A string, number or boolean cannot hold a nested secret, so those are written directly;
 * objects go through the redactor as before. Children share the parent's stringifiers, so
 * this covers them too.
 */
function withPrimitivesUnredacted (logger: Logger): Logger {
  const stringifiers = (logger as unknown as Record<symbol, Record<symbol, unknown> | undefined>)[pino.symbols.stringifiersSym]
  const wildcard = stringifiers?.[pino.symbols.wildcardFirstSym]
  if (!stringifiers || typeof wildcard !== 'function') return logger
  stringifiers[pino.symbols.wildcardFirstSym] = (value: unknown, safe?: unknown): unknown =>
    typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? JSON.stringify(value) : wildcard(value, safe)
  return logger
}

import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'
import { createRequire } from 'node:module'
import { writeSync } from 'node:fs'
import type { Config } from './config.ts'
import { redactOnlyWhereReachable } from './log-redaction.ts'
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
  const paths = [
    'req.headers.authorization', 'headers.authorization', '*.authorization', 'req.headers.cookie', '*.headers.cookie',
    ...secretPayloadPaths(more.taskTypes ?? builtinTaskTypes),
  ]
  const options: LoggerOptions = {
    level: config.LOG_LEVEL,
    base,
    redact: { paths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  const logger = more.destination
    ? pino(options, more.destination)
    : process.stdout.isTTY && prettyAvailable()
      ? pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } })
      : pino(options, bufferedStdout())
  return redactOnlyWhereReachable(logger, paths)
}

/**
 * stdout written in blocks of at least 4 KiB instead of a write call per line: under load
 * the access log and the attempt lines made one system call each, a tenth of the worker's
 * CPU time. Lines wait at most a quarter of a second, and what is left is written when the
 * process exits, so only a SIGKILL loses them (at most one block).
 *
 * The lines are gathered here, not in sonic-boom's own buffer (its minLength): that one
 * measures its whole pending string on every write, which copies it, so a line cost a
 * copy of half a block on average, a twentieth of the API's allocations.
 */
function bufferedStdout (): DestinationStream {
  stdoutBlocks ??= createStdoutBlocks()
  return stdoutBlocks
}

// One per process, shared by every logger writing to stdout: lines keep their order, and
// one timer and one exit hook serve them all.
let stdoutBlocks: DestinationStream | undefined

const BLOCK = 4096

/** At exit, where nothing asynchronous runs: a pipe that is full answers EAGAIN for a moment. */
function writeAllSync (data: Buffer): void {
  for (let rest = data, tries = 0; rest.length > 0;) {
    try {
      rest = rest.subarray(writeSync(1, rest))
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EAGAIN' || ++tries > 1000) throw err
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1)
    }
  }
}

function createStdoutBlocks (): DestinationStream {
  const out = pino.destination({ dest: 1, sync: false })
  let lines: string[] = []
  let size = 0
  const take = (): string => {
    const block = lines.join('')
    lines = []
    size = 0
    return block
  }
  const flush = (): void => {
    if (size > 0) out.write(take())
  }
  setInterval(flush, 250).unref()
  process.once('exit', () => {
    try {
      out.flushSync()
      if (size > 0) writeAllSync(Buffer.from(take()))
    } catch {
      // stdout is gone (a closed pipe): there is nowhere left to write.
    }
  })
  return {
    write (line: string): void {
      lines.push(line)
      size += line.length
      if (size >= BLOCK) flush()
    },
  }
}

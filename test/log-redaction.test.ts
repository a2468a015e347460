import t from 'tap'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { redactOnlyWhereReachable } from '../services/core/log-redaction.ts'
import { secretPayloadPaths } from '../services/core/log.ts'

// The service's paths, with a secret field that needs brackets.
const PATHS = [
  'req.headers.authorization', 'headers.authorization', '*.authorization', 'req.headers.cookie', '*.headers.cookie',
  ...secretPayloadPaths([{ secretFields: ['headers', 'api-key'] }]),
]

function capture (skipping: boolean) {
  const lines: string[] = []
  const destination = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const logger = pino({ level: 'info', base: { service: 'x' }, timestamp: false, redact: { paths: PATHS, censor: '[redacted]' } }, destination)
  return { logger: skipping ? redactOnlyWhereReachable(logger, PATHS) : logger, lines }
}

const circular: Record<string, unknown> = { name: 'loop' }
circular.self = circular

// Values that hold a secret somewhere a path reaches, values that hold none, and the awkward ones.
const LINES: Record<string, unknown>[] = [
  { req: { method: 'POST', url: '/v1/tasks', headers: { authorization: 'Bearer a', cookie: 'c', accept: '*/*' } } },
  { req: { method: 'GET', url: '/x', remoteAddress: '127.0.0.1' }, res: { statusCode: 200 }, responseTime: 1.5, taskId: 't-1' },
  { headers: { authorization: 'Bearer b', 'x-other': 'o' } },
  { client: { authorization: 'Bearer c' }, other: { authorization: null } },
  { payload: { headers: { a: 1 }, 'api-key': 'k', keep: true } },
  { task: { type: 'http', payload: { headers: { token: 'tok' }, url: 'u' } }, attempt: 2 },
  { job: { data: { payload: { 'api-key': 'k2', n: [1, 2, { headers: 'h' }] } } } },
  { list: [{ payload: { headers: 'in an array' } }, { authorization: 'in an array too' }] },
  { nested: { deep: { deeper: { authorization: 'beyond the paths' } } }, n: 42, ok: false, s: 'quote " and \\ backslash' },
  { err: Object.assign(new Error('boom'), { headers: { cookie: 'on an error' } }) },
  { when: new Date(0), empty: {}, nothing: null, missing: undefined },
  { big: 10n },
  { loop: circular },
]

t.test('a value no redact path reaches skips the redactor and is written exactly as pino writes it', async (t) => {
  const plain = capture(false)
  const skipping = capture(true)
  for (const line of LINES) {
    plain.logger.info(line, 'line')
    skipping.logger.info(line, 'line')
  }
  const childPlain = plain.logger.child({ taskId: 't-9', task: { payload: { headers: { authorization: 'x' } } } })
  const childSkipping = skipping.logger.child({ taskId: 't-9', task: { payload: { headers: { authorization: 'x' } } } })
  childPlain.info({ outcome: 'completed', durationMs: 3 }, 'child')
  childSkipping.info({ outcome: 'completed', durationMs: 3 }, 'child')
  t.equal(skipping.lines.length, LINES.length + 1)
  t.same(skipping.lines, plain.lines, 'every line identical to pino\'s own redaction')
  const text = skipping.lines.join('')
  for (const secret of ['Bearer a', 'Bearer b', 'Bearer c', '"k"', 'tok', 'k2', 'on an error']) t.notOk(text.includes(secret), `${secret} is redacted`)
  t.ok(text.includes('beyond the paths'), 'a field no path names is kept')
})

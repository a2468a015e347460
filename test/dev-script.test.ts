import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import t from 'tap'
import { freePort } from './helpers/fault-tools.ts'
import { waitFor } from './helpers/harness.ts'
import { createTestDatabase, deletePrefixKeys, serviceEndpoints, uniqueName } from './helpers/services.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** The local addresses with a listening TCP socket on `port`, as the kernel reports them. */
function listeners (port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const found: string[] = []
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/)
      if (state !== '0A' || !local?.endsWith(`:${hexPort}`)) continue
      const hex = local.split(':')[0]!
      // IPv4 is four little-endian bytes; anything in tcp6 is shown as its raw hex.
      found.push(hex.length === 8 ? hex.match(/../g)!.reverse().map((b) => parseInt(b, 16)).join('.') : hex)
    }
  }
  return found
}

t.test('make dev: listens on 127.0.0.1, and one Ctrl-C is one graceful stop that lets a running task finish', async (t) => {
  const { redisUrl } = await serviceEndpoints()
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const prefix = uniqueName('tlt')
  t.teardown(() => deletePrefixKeys(redisUrl, prefix))
  const port = await freePort()
  const { HOST: _host, ...env } = process.env
  // detached: its own process group, as a terminal's foreground job has; the Ctrl-C below goes to the group.
  const dev = spawn(process.execPath, ['scripts/dev.ts'], {
    cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...env, DATABASE_URL: database.url, REDIS_URL: redisUrl, PORT: String(port), METRICS_PORT: String(await freePort()),
      TASKLANE_QUEUE_PREFIX: prefix, LOG_LEVEL: 'info', TASKLANE_DRAIN_DELAY_MS: '0',
    },
  })
  t.teardown(() => { if (dev.exitCode === null) process.kill(-dev.pid!, 'SIGKILL') })
  let output = ''
  dev.stdout!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  dev.stderr!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  await waitFor(async () => output.includes('"worker started"') && output.includes('Server listening'), 90_000)
    .catch((err: Error) => { throw new Error(`${err.message}; output: ${output}`) })
  t.same(listeners(port), ['127.0.0.1'], 'the API listens on 127.0.0.1 only')

  const base = `http://127.0.0.1:${port}`
  const created = await fetch(`${base}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'sleep', payload: { ms: 2_000 } }) })
  const task = await created.json() as { id: string }
  await waitFor(async () => (await (await fetch(`${base}/v1/tasks/${task.id}`)).json() as { status: string }).status === 'running', 20_000)

  process.kill(-dev.pid!, 'SIGINT') // what a terminal does on Ctrl-C
  const [code] = await once(dev, 'exit')
  t.equal(code, 0, 'dev exits cleanly')
  t.notMatch(output, /second SIG/, 'no process took the second-signal path')
  t.equal(output.match(/"shutting down"/g)?.length, 2, 'each process shut down once')
  const sql = postgres(database.url, { max: 1, onnotice: () => {} })
  t.teardown(() => sql.end())
  const [row] = await sql<{ status: string }[]>`select status from tasks where id = ${task.id}`
  t.equal(row!.status, 'completed', 'the running task finished during the graceful stop')
})

t.test('make dev checks the configured DATABASE_URL and REDIS_URL, one line each', async (t) => {
  const [pgPort, redisPort] = [await freePort(), await freePort()]
  const run = spawnSync(process.execPath, ['scripts/check-services.ts'], {
    cwd: ROOT, encoding: 'utf8', timeout: 30_000,
    env: { ...process.env, DATABASE_URL: `postgres://app:secret@127.0.0.1:${pgPort}/tasklane`, REDIS_URL: `redis://127.0.0.1:${redisPort}` },
  })
  t.equal(run.status, 1)
  const lines = run.stdout.trim().split('\n')
  t.match(lines[0], `postgres: cannot connect to postgres://app:***@127.0.0.1:${pgPort}/tasklane: `)
  t.match(lines[1], `redis: cannot connect to redis://127.0.0.1:${redisPort}: `)
  t.equal(lines.length, 3, run.stdout)
  t.equal(run.stderr, '', 'no stack traces')
  t.notMatch(run.stdout, /secret/, 'the password is not shown')

  const { databaseUrl, redisUrl } = await serviceEndpoints()
  const ok = spawnSync(process.execPath, ['scripts/check-services.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl } })
  t.equal(ok.status, 0, ok.stdout)
  t.match(ok.stdout, /^postgres: ok .*\nredis: ok /)
})

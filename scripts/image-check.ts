// The built images, run for real with podman against the local Postgres and Redis: the
// migration, one API and one worker container (read-only root, uid 1000), tasks created through
// the API container and completed by the worker container, HEALTHCHECK, SIGTERM, a running task
// released at stop and finished by the next worker, no dev dependency in the worker image.
// Leaves no container, database or Redis key behind. Run by scripts/image-check.sh.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import postgres from 'postgres'
import { freePort } from '../test/helpers/fault-tools.ts'
import { waitFor } from '../test/helpers/harness.ts'
import { deletePrefixKeys, uniqueName } from '../test/helpers/services.ts'

const API_IMAGE = 'tasklane-api:local'
const WORKER_IMAGE = 'tasklane-worker:local'
const PG = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
// The worker's drain grace, and how long podman stop waits before SIGKILL (compose's 35 s
// stop_grace_period stands above a 25 s grace the same way).
const SHUTDOWN_GRACE_MS = 2000
const STOP_TIMEOUT_S = 15
// As compose runs them: read-only root (podman mounts a tmpfs on /tmp), no capabilities.
const HARDENED = ['--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
  '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024']
// The host's network reaches the local Postgres and Redis. No systemd here schedules the
// HEALTHCHECK, so the check runs it itself (podman healthcheck run).
const RUN_FLAGS = [...HARDENED, '--network', 'host', '--health-interval', 'disable']

type Result = { code: number, stdout: string, stderr: string }
function podman (...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile('podman', ['--runtime', 'runc', ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: stdout.trim(), stderr: stderr.trim() })
    })
  })
}

let failures = 0
let passes = 0
function check (ok: boolean, what: string, detail = ''): boolean {
  if (ok) passes++; else failures++
  console.log(`image check: ${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`)
  return ok
}

const id = randomBytes(4).toString('hex')
const dbName = uniqueName('tasklane_imagecheck')
const prefix = `tlimg_${id}`
const apiKey = randomBytes(24).toString('hex')
const containers: string[] = []
const admin = postgres(PG, { max: 1, onnotice: () => {} })
const dbUrl = Object.assign(new URL(PG), { pathname: `/${dbName}` }).toString()
const env = (vars: Record<string, string | number>): string[] => Object.entries({
  DATABASE_URL: dbUrl, REDIS_URL: REDIS, TASKLANE_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn', ...vars,
}).flatMap(([k, v]) => ['-e', `${k}=${v}`])

async function imageFacts (): Promise<void> {
  for (const image of [API_IMAGE, WORKER_IMAGE]) {
    const inspect = await podman('image', 'inspect', image)
    if (!check(inspect.code === 0, `${image} exists`, errorLine(inspect.stderr))) continue
    const [facts] = JSON.parse(inspect.stdout) as { Size: number, User?: string, Config?: { User?: string }, HealthCheck?: { Test?: string[] }, Healthcheck?: { Test?: string[] } }[]
    console.log(`image check: size ${image} ${(facts!.Size / 1e6).toFixed(0)} MB`)
    const health = facts!.HealthCheck ?? facts!.Healthcheck
    check((health?.Test?.length ?? 0) > 0, `${image} carries its HEALTHCHECK`)
    check((facts!.Config?.User ?? facts!.User) === '1000:1000', `${image} runs as 1000:1000`)
  }
  // Every package the lockfile marks dev (or devOptional: typescript, an optional peer of a
  // production dependency that nothing loads at run time) must be absent.
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { dev?: boolean, devOptional?: boolean }> }
  const forbidden = new Set(Object.entries(lock.packages).filter(([path, p]) => path && (p.dev || p.devOptional)).map(([path]) => path))
  const list = await podman('run', '--rm', ...HARDENED, '--network', 'none', '--no-healthcheck', '--entrypoint', 'node', WORKER_IMAGE, '-e',
    "const fs = require('fs'); console.log(JSON.stringify(fs.readdirSync('node_modules', { recursive: true }).filter((p) => p.endsWith('/package.json') || p === 'package.json').map((p) => 'node_modules/' + p.replace(/\\/?package\\.json$/, ''))))")
  if (!check(list.code === 0, 'the worker image lists its node_modules', errorLine(list.stderr))) return
  // Nested package.json files (dist/esm and the like) are not packages: the lockfile's paths are.
  const installed = (JSON.parse(list.stdout) as string[]).filter((path) => path in lock.packages)
  const dev = installed.filter((path) => forbidden.has(path))
  check(installed.includes('node_modules/bullmq') && dev.length === 0, 'the worker image holds no dev dependency',
    dev.length ? dev.slice(0, 5).join(', ') : `${installed.length} packages, none of the lockfile's ${forbidden.size} dev ones`)
}

/** The line of a process's output that says what went wrong, for a one-line report. */
const errorLine = (text: string): string => {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean)
  return lines.find((l) => /^\w*Error\b|Error:|error:/.test(l)) ?? lines.at(-1) ?? ''
}

async function start (name: string, image: string, vars: Record<string, string | number>, healthPort: number): Promise<string> {
  const run = await podman('run', '-d', '--name', name, ...RUN_FLAGS, ...env(vars), image)
  if (run.code !== 0) throw new Error(`podman run ${name}: ${errorLine(run.stderr)}`)
  containers.push(name)
  const deadline = Date.now() + 60_000
  for (;;) {
    if ((await fetch(`http://127.0.0.1:${healthPort}/healthz`).catch(() => undefined))?.ok) return name
    const state = await podman('inspect', '--format', '{{.State.Running}} {{.State.ExitCode}}', name)
    const logs = async () => { const l = await podman('logs', '--tail', '30', name); return errorLine(`${l.stdout}\n${l.stderr}`) }
    if (state.stdout.startsWith('false')) throw new Error(`${name} exited (code ${state.stdout.split(' ')[1]}): ${await logs()}`)
    if (Date.now() > deadline) throw new Error(`${name} did not answer /healthz within 60 s: ${await logs()}`)
    await sleep(250)
  }
}

async function hardening (name: string): Promise<void> {
  const status = await podman('exec', name, 'cat', '/proc/1/status')
  const uids = /^Uid:\s+(.*)$/m.exec(status.stdout)?.[1]?.split(/\s+/) ?? []
  check(uids.length === 4 && uids.every((u) => u === '1000'), `${name}: its processes run as uid 1000`, uids.join(' '))
  const ro = await podman('inspect', '--format', '{{.HostConfig.ReadonlyRootfs}}', name)
  // The node user's home is writable by it: only a read-only root makes this write fail.
  const write = await podman('exec', name, 'node', '-e', "try { require('fs').writeFileSync('/home/node/probe', 'x'); console.log('written') } catch (e) { console.log(e.code) }")
  check(ro.stdout === 'true' && write.stdout === 'EROFS', `${name}: read-only root filesystem`, `a write gets ${write.stdout || write.stderr}`)
  const health = await podman('healthcheck', 'run', name)
  check(health.code === 0, `${name}: the HEALTHCHECK command passes`, errorLine(health.stdout || health.stderr))
}

/** podman stop (SIGTERM, SIGKILL after STOP_TIMEOUT_S): exit code 0, well within the grace. */
async function stop (name: string): Promise<void> {
  const started = Date.now()
  await podman('stop', '-t', String(STOP_TIMEOUT_S), name)
  const seconds = (Date.now() - started) / 1000
  const exit = await podman('inspect', '--format', '{{.State.ExitCode}}', name)
  check(exit.stdout === '0' && seconds < STOP_TIMEOUT_S, `${name}: podman stop ends it with exit code 0 within the grace period`,
    `exit ${exit.stdout} after ${seconds.toFixed(1)} s of ${STOP_TIMEOUT_S} s`)
}

async function main (): Promise<void> {
  await imageFacts()
  await admin.unsafe(`create database "${dbName}"`)
  const migrate = await podman('run', '--rm', ...HARDENED, '--network', 'host', '--no-healthcheck', ...env({}), API_IMAGE, 'node', 'dist/core/db/migrate-command.js')
  const db = postgres(dbUrl, { max: 1, onnotice: () => {} })
  try {
    const [tables] = await db<{ n: number }[]>`select count(*)::int as n from information_schema.tables where table_name = 'tasks'`
    check(migrate.code === 0 && tables!.n === 1, 'the migration container creates the schema', migrate.code ? errorLine(migrate.stderr) : '')
  } finally {
    await db.end({ timeout: 5 })
  }

  const [apiPort, apiMetrics, workerMetrics, worker2Metrics] = await Promise.all([freePort(), freePort(), freePort(), freePort()])
  const api = await start(`tlimg-api-${id}`, API_IMAGE, {
    PORT: apiPort, METRICS_PORT: apiMetrics, TASKLANE_API_KEYS: `imagecheck:${apiKey}`, TASKLANE_DRAIN_DELAY_MS: 500,
  }, apiPort)
  const workerEnv = { TASKLANE_SHUTDOWN_GRACE_MS: SHUTDOWN_GRACE_MS, TASKLANE_QUEUES: 'default:5,http:5' }
  const worker = await start(`tlimg-worker-${id}`, WORKER_IMAGE, { ...workerEnv, METRICS_PORT: workerMetrics }, workerMetrics)
  for (const name of [api, worker]) await hardening(name)

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${apiPort}${path}`, {
      method, headers: { authorization: `Bearer ${apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : null,
    })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }
  const statusOf = async (taskId: string) => (await call('GET', `/v1/tasks/${taskId}`)).body.status as string

  const created = await Promise.all(Array.from({ length: 20 }, (_, i) => call('POST', '/v1/tasks', { type: 'echo', payload: { i } })))
  check(created.every((r) => r.status === 202), 'the API container accepts 20 tasks', `statuses ${[...new Set(created.map((r) => r.status))].join(', ')}`)
  const ids = created.map((r) => r.body.id as string)
  const done = await waitFor(async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'completed'), 60_000, 250).catch(() => false)
  check(done, 'the worker container completes all 20')

  // A task running when the worker stops goes back to the queue, and the next worker runs it.
  const long = await call('POST', '/v1/tasks', { type: 'sleep', payload: { ms: 8000 }, maxAttempts: 3 })
  const longId = long.body.id as string
  await waitFor(async () => (await statusOf(longId)) === 'running', 30_000, 100)
  await stop(worker)
  const attempts = (await call('GET', `/v1/tasks/${longId}/attempts`)).body.items as { outcome: string }[]
  const afterStop = await statusOf(longId)
  check(afterStop === 'queued' && attempts.some((a) => a.outcome === 'released'), 'the running sleep task is released at stop, not lost',
    `status ${afterStop}, attempts ${attempts.map((a) => a.outcome).join(',')}`)
  await start(`tlimg-worker2-${id}`, WORKER_IMAGE, { ...workerEnv, METRICS_PORT: worker2Metrics }, worker2Metrics)
  const finished = await waitFor(async () => (await statusOf(longId)) === 'completed', 60_000, 250).catch(() => false)
  check(finished === true, 'a restarted worker container completes the released task')
  await stop(`tlimg-worker2-${id}`)
  await stop(api)
}

try {
  await main()
} catch (err) {
  check(false, 'the run', (err as Error).message)
} finally {
  for (const name of containers) await podman('rm', '-f', '-t', '0', name)
  await admin.unsafe(`drop database if exists "${dbName}" with (force)`).catch(() => {})
  await admin.end({ timeout: 5 })
  const keys = await deletePrefixKeys(REDIS, prefix)
  console.log(`image check: cleaned up ${containers.length} containers, database ${dbName}, ${keys} Redis keys under ${prefix}:`)
}
console.log(failures === 0 ? `image check: passed (${passes} checks)` : `image check: FAILED (${failures} of ${passes + failures} checks)`)
process.exitCode = failures === 0 ? 0 : 1

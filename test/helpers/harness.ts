import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { buildServer } from '../../services/api/build-server.ts'
import { openApiDeps } from '../../services/api/open-deps.ts'
import { startWorker } from '../../services/worker/start-worker.ts'
import { createTestDatabase, deletePrefixKeys, serviceEndpoints } from './services.ts'
import { testConfig, testLogger } from './test-config.ts'

type Teardown = { teardown: (fn: () => unknown) => void }

export type Harness = Awaited<ReturnType<typeof startHarness>>

/**
 * A whole Tasklane on the real services for one test: a fresh database, a unique BullMQ
 * prefix, the API app, and optionally an in-process worker. Everything closes at teardown.
 */
export async function startHarness (t: Teardown, options: { env?: Record<string, string>, worker?: boolean, postgresUrl?: string } = {}) {
  const { redisUrl } = await serviceEndpoints()
  // `postgresUrl`: a server of the test's own (a drill that restarts it) instead of the shared one.
  const database = await createTestDatabase(options.postgresUrl)
  const config = testConfig(database.url, redisUrl, options.env)
  const deps = openApiDeps(config, testLogger(config, 'tasklane-api'))
  const app = await buildServer(deps, testLogger(config, 'tasklane-api'))
  await app.ready()
  // The producer connection fails fast instead of queueing: let it connect before tests use it.
  if (deps.redis.status !== 'ready') await once(deps.redis, 'ready')
  const workers: { stop: (graceMs?: number) => Promise<void> }[] = []
  const children: ChildProcess[] = []

  const harness = {
    config,
    deps,
    app,
    sql: deps.database.sql,
    async startWorker (env: Record<string, string> = {}, workerOptions: Parameters<typeof startWorker>[2] = {}) {
      const workerConfig = testConfig(database.url, redisUrl, { ...options.env, ...env, TASKLANE_QUEUE_PREFIX: config.TASKLANE_QUEUE_PREFIX })
      const worker = await startWorker(workerConfig, testLogger(workerConfig, 'tasklane-worker'), workerOptions)
      workers.push(worker)
      return worker
    },
    /** A worker in its own process, as in production; resolves once its ops port answers. */
    async spawnWorker (env: Record<string, string> = {}) {
      const child = spawn(process.execPath, [fileURLToPath(new URL('../../services/worker/main.ts', import.meta.url))], {
        env: {
          ...process.env,
          DATABASE_URL: database.url,
          REDIS_URL: redisUrl,
          TASKLANE_QUEUE_PREFIX: config.TASKLANE_QUEUE_PREFIX,
          METRICS_PORT: '0',
          // info at least: the start is detected from the "worker started" line.
          LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
          TASKLANE_SHUTDOWN_GRACE_MS: '2000',
          TASKLANE_HTTP_ALLOW_PRIVATE: String(config.TASKLANE_HTTP_ALLOW_PRIVATE),
          ...env,
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      children.push(child)
      let output = ''
      child.stdout!.setEncoding('utf8')
      await new Promise<void>((resolve, reject) => {
        const onData = (chunk: string) => {
          output += chunk
          if (output.includes('"worker started"')) { child.stdout!.off('data', onData); child.stdout!.resume(); resolve() }
        }
        child.stdout!.on('data', onData)
        child.once('exit', (code) => reject(new Error(`worker exited with ${code} before starting: ${output}`)))
      })
      return child
    },
    async createTask (body: Record<string, unknown>, headers: Record<string, string> = {}) {
      const res = await app.inject({ method: 'POST', url: '/v1/tasks', payload: body, headers })
      if (res.statusCode !== 202 && res.statusCode !== 200) throw new Error(`create failed ${res.statusCode}: ${res.body}`)
      return res.json() as { id: string, status: string, [k: string]: unknown }
    },
    async getTask (id: string) {
      const res = await app.inject({ method: 'GET', url: `/v1/tasks/${id}` })
      return res.json() as { id: string, status: string, attempts: number, [k: string]: unknown }
    },
    /** Polls until every task is terminal (or the time runs out) and returns them. */
    async waitForTerminal (ids: string[], timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const rows = await deps.database.sql<{ id: string, status: string }[]>`
          select id, status from tasks where id = any(${ids}::uuid[])`
        const pending = rows.filter((r) => !['completed', 'failed', 'cancelled'].includes(r.status))
        if (pending.length === 0 || Date.now() > deadline) return Promise.all(ids.map((id) => harness.getTask(id)))
        await sleep(50)
      }
    },
  }

  t.teardown(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await once(child, 'exit')
      }
    }
    await Promise.all(workers.map((w) => w.stop(500)))
    await app.close()
    await deps.close()
    // Every key of the test's prefix: queues, rate-limit counters, event channels' leftovers.
    await deletePrefixKeys(config.REDIS_URL, config.TASKLANE_QUEUE_PREFIX).catch(() => {})
    await database.drop()
  })

  if (options.worker) await harness.startWorker()
  return harness
}

export async function waitFor<T> (probe: () => Promise<T | undefined | false>, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await sleep(stepMs)
  }
}

import t from 'tap'
import { runScript } from './helpers/run-script.ts'
import { serviceEndpoints } from './helpers/services.ts'

// The benchmark runs for a few seconds so it cannot rot (its processes take longer to start than
// to measure: eight of them for the peers alone, hence the long limit on a busy machine). Figures are not judged here (speed
// belongs to `make bench`), only that every phase runs and the JSON line has every field.
t.test('npm run bench -- --smoke runs every phase and prints the figures as one JSON line', async (t) => {
  const { databaseUrl, redisUrl } = await serviceEndpoints()
  const { code, stdout, stderr } = await runScript('bench/run.ts', ['--smoke'], { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl }, 240_000)
  t.equal(code, 0, `the bench exits cleanly\n${stderr}`)

  const lines = stdout.trim().split('\n')
  const result = JSON.parse(lines.at(-1)!)
  t.match(stdout, /\| POST \/v1\/tasks /, 'prints the create table')
  t.match(stdout, /End to end/, 'prints the end-to-end table')
  t.equal(result.mode, 'smoke')
  t.match(result.machine, { cpus: Number, node: String, postgres: String, redis: String })
  t.match(result.rawBullmq, { jobs: 1000, addPerSec: Number, drainPerSec: Number })
  const latency = { p50: Number, p95: Number, p99: Number }
  t.match(result.create.single, { requestsPerSec: Number, tasksPerSec: Number, latencyMs: latency })
  t.equal(result.create.single.errors + result.create.single.non2xx, 0, 'every create was accepted')
  t.match(result.create.batch, { requestsPerSec: Number, tasksPerSec: Number, latencyMs: latency }, 'the batch route was measured')
  t.equal(result.create.batch.errors + result.create.batch.non2xx, 0, 'every batch was accepted')
  const flow = {
    workers: Number, tasksPerSec: Number, createdPerSec: Number, pickupMs: latency, endToEndMs: latency,
    cpuSecPer1kTasks: { api: Number, worker: Number, postgres: Number, redis: Number },
    perTask: { postgresCommits: Number, redisCommands: Number },
  }
  t.match(result.drain, { tasks: 500, tasksPerSec: Number, cpuSecPer1kTasks: { worker: Number, postgres: Number, redis: Number } })
  t.equal(result.drain.completed, 500, 'the drain phase saw every task completed')
  t.match(result.webhook, { tasks: 500, completed: 500, tasksPerSec: Number }, 'the webhook phase saw every task completed')
  t.ok(result.webhook.requests >= 500, 'one request at least per task, counted at the receiver')
  t.match(result.fixedRate, { ...flow, targetPerSec: Number })
  t.ok(result.endToEnd.length >= 1, 'at least one end-to-end phase')
  for (const e of result.endToEnd) t.match(e, flow)
  t.equal(result.notifyHang.length, 1, 'the e2e-notify phase ran once in a smoke run')
  for (const n of result.notifyHang) {
    t.match(n, { route: 'single', workers: 1, without: flow, withHangingEndpoint: flow, ratio: Number })
    t.ok(n.hangingConnections.total > 0, 'the hanging endpoint was called (and held the connections)')
  }
  t.match(stdout, /notification endpoint that never answers/, 'prints the side-by-side table')
  t.match(result.fairness, { steadyPerSec: 20, alone: latency, beside: latency, floodCompletedPerSec: Number, floodBacklog: Number })
  t.match(result.peakRssMb, { api: Number, worker: Number })
  const systems = ['tasklane', 'byHand', 'pgBoss1', 'pgBoss50']
  t.same(result.peers.runs.map((r: { system: string }) => r.system).sort(), [...systems].sort(), 'every system ran once in the smoke round')
  for (const run of result.peers.runs) t.equal(run.tasks, 200, `${run.system} recorded every task completed`)
  for (const system of systems) t.match(result.peers.median[system], { tasksPerSec: Number, cpuMsPerTask: { total: Number }, peakRssMb: { api: Number, worker: Number } })
  for (const peer of ['byHand', 'pgBoss1', 'pgBoss50']) t.match(result.peers.tasklaneOver[peer], { medianTasksPerSec: Number, medianCpuPerTask: Number })
  t.match(stdout, /Beside its peers/, 'prints the peers table')
  t.ok('single' in result.ratioToRawBullmq && 'batch' in result.ratioToRawBullmq && 'drain' in result.ratioToRawBullmq)
})

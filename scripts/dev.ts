// `make dev`: the API and one worker against the configured services, authentication off,
// listening on 127.0.0.1 only, logs on this terminal. One Ctrl-C is one graceful stop.
import { spawn, type ChildProcess } from 'node:child_process'

const env = {
  ...process.env,
  TASKLANE_AUTH: process.env.TASKLANE_AUTH ?? 'disabled',
  // Authentication is off: reachable from this machine only, unless HOST says otherwise.
  HOST: process.env.HOST ?? '127.0.0.1',
}
// Both processes serve /metrics on METRICS_PORT; on one machine the worker takes the next port.
const metricsPort = Number(process.env.METRICS_PORT ?? 9464)
// Each child in a process group of its own (detached): a Ctrl-C reaches this script only, which
// sends each child one SIGTERM. Sharing the terminal's group, a child would get the terminal's
// SIGINT and then this script's signal, and take the second-signal path that exits at once.
const start = (entry: string, port: number): ChildProcess =>
  spawn(process.execPath, ['--max-semi-space-size=8', entry], { env: { ...env, METRICS_PORT: String(port) }, stdio: 'inherit', detached: true })
const children: ChildProcess[] = [start('services/api/server.ts', metricsPort), start('services/worker/main.ts', metricsPort + 1)]

let stopping = false
function stop () {
  if (stopping) return
  stopping = true
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
// Should this script die some other way, its children must not outlive it.
process.on('exit', () => { for (const child of children) if (child.exitCode === null) child.kill('SIGKILL') })
for (const child of children) {
  child.on('exit', (code) => {
    if (!stopping) {
      process.stderr.write(`a Tasklane process exited (${code}); stopping the other\n`)
      process.exitCode = code ?? 1
      stop()
    }
  })
}
process.stdout.write(`Tasklane: API on http://${env.HOST}:${process.env.PORT ?? 3000}, metrics on :${metricsPort} (API) and :${metricsPort + 1} (worker)\n`)

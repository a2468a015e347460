// `make dev`: the API and one worker against the local services, authentication off, logs
// on this terminal. Ctrl-C stops both.
import { spawn, type ChildProcess } from 'node:child_process'

const env = { ...process.env, TASKLANE_AUTH: process.env.TASKLANE_AUTH ?? 'disabled' }
// Both processes serve /metrics on METRICS_PORT; on one machine the worker takes the next port.
const metricsPort = Number(process.env.METRICS_PORT ?? 9464)
const children: ChildProcess[] = [
  spawn(process.execPath, ['--max-semi-space-size=16', 'services/api/server.ts'], { env: { ...env, METRICS_PORT: String(metricsPort) }, stdio: 'inherit' }),
  spawn(process.execPath, ['--max-semi-space-size=16', 'services/worker/main.ts'], { env: { ...env, METRICS_PORT: String(metricsPort + 1) }, stdio: 'inherit' }),
]

let stopping = false
function stop (signal: NodeJS.Signals) {
  if (stopping) return
  stopping = true
  for (const child of children) if (child.exitCode === null) child.kill(signal)
}
process.on('SIGINT', () => stop('SIGTERM'))
process.on('SIGTERM', () => stop('SIGTERM'))
for (const child of children) {
  child.on('exit', (code) => {
    if (!stopping) {
      process.stderr.write(`a Tasklane process exited (${code}); stopping the other\n`)
      process.exitCode = code ?? 1
      stop('SIGTERM')
    }
  })
}
process.stdout.write(`Tasklane: API on http://127.0.0.1:${process.env.PORT ?? 3000}, metrics on :${metricsPort} (API) and :${metricsPort + 1} (worker)\n`)

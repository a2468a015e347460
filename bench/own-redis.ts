import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { freePort } from './bench-stack.ts'

/**
 * A Redis server of the benchmark's own (redis-server on PATH, a free port, a scratch
 * directory, append-only every second as deploy/redis.conf has it), so Redis' CPU and command
 * counts are the benchmark's alone on a host where other programs share the usual Redis.
 */
export async function startOwnRedis (): Promise<{ url: string, stop: () => Promise<void> }> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'tasklane-bench-redis-'))
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction',
  ], { stdio: 'ignore' })
  const url = `redis://127.0.0.1:${port}`
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`)
    try {
      await probe.connect()
      await probe.ping()
      break
    } catch {
      if (i > 100) throw new Error('redis-server did not answer within 10 s')
      probe.disconnect()
      await sleep(100)
    }
  }
  probe.disconnect()
  return {
    url,
    async stop () {
      if (child.exitCode === null) {
        const exited = once(child, 'exit')
        child.kill('SIGTERM')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

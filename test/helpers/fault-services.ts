import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, connect, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

type Teardown = { teardown: (fn: () => unknown) => void }

async function stopChild (child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const exited = once(child, 'exit')
  if (await Promise.race([exited.then(() => true), sleep(graceMs, false)])) return
  child.kill('SIGKILL')
  await exited
}

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * A redis-server of this test's own on a free port, without persistence (stopping it loses every
 * key), which the test may stop and start again; `args` adds settings (e.g. --maxmemory-policy).
 * Register it before the harness: teardowns run last-in first-out, so it outlives its users.
 */
export async function startPrivateRedis (t: Teardown, args: string[] = []) {
  const port = await freePort()
  let child: ChildProcess | undefined
  const redis = {
    url: `redis://127.0.0.1:${port}`,
    async start (): Promise<void> {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' })
      for (let i = 0; i < 100; i++) {
        if (await answers(port)) return
        await sleep(50)
      }
      throw new Error('the private redis-server did not start')
    },
    async stop (): Promise<void> {
      if (child) {
        child.kill('SIGCONT')
        await stopChild(child)
      }
      child = undefined
    },
    /** Freezes the server: connections stay open, nothing is answered (a hung Redis). */
    freeze: () => { child?.kill('SIGSTOP') },
    thaw: () => { child?.kill('SIGCONT') },
  }
  t.teardown(() => redis.stop())
  await redis.start()
  return redis
}

function answers (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/**
 * A TCP proxy in front of a real server. `stop` closes the port and cuts every connection, so
 * the process behind it sees its dependency stop answering; `start` opens the same port again.
 */
export async function startTcpProxy (t: Teardown, target: { host: string, port: number }) {
  const port = await freePort()
  const sockets = new Set<Socket>()
  let server: Server | undefined
  const proxy = {
    port,
    async start (): Promise<void> {
      server = createServer((client) => {
        const upstream = connect(target)
        sockets.add(client).add(upstream)
        const drop = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
        client.on('error', drop).on('close', drop)
        upstream.on('error', drop).on('close', drop)
        client.pipe(upstream).pipe(client)
      })
      await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve))
    },
    async stop (): Promise<void> {
      for (const socket of sockets) socket.destroy()
      sockets.clear()
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()))
      server = undefined
    },
  }
  t.teardown(() => proxy.stop())
  await proxy.start()
  return proxy
}

/**
 * Starts a Tasklane process (services/api/server.ts or services/worker/main.ts) and resolves
 * with the first JSON log line `found` accepts, e.g. the one that names its port.
 */
export async function spawnService (t: Teardown, script: string, env: Record<string, string>, found: (line: Record<string, unknown>) => boolean) {
  const child = spawn(process.execPath, [fileURLToPath(new URL(`../../${script}`, import.meta.url))], {
    env: { ...process.env, LOG_LEVEL: 'info', TASKLANE_SHUTDOWN_GRACE_MS: '1000', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => stopChild(child))
  let output = ''
  let stdout = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stdout!.setEncoding('utf8')
  const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buffer = ''
    let ready = false
    child.stdout!.on('data', (chunk: string) => {
      output += chunk
      stdout += chunk
      if (ready) return
      buffer += chunk
      const lines = buffer.split('\n')
      buffer = lines.pop()!
      for (const text of lines) {
        try {
          const parsed = JSON.parse(text) as Record<string, unknown>
          if (found(parsed)) { ready = true; resolve(parsed); return }
        } catch { /* not a log line */ }
      }
    })
    child.once('exit', (code) => { if (!ready) reject(new Error(`${script} exited with ${code} before it was ready: ${output.slice(-2_000)}`)) })
  })
  return { child, line, stdout: () => stdout }
}

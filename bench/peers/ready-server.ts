import { createServer, type Server } from 'node:http'

/** A bare /readyz for a peer's worker process, so the benchmark knows when it has started. */
export async function listenReady (port: number): Promise<Server> {
  const server = createServer((_req, res) => { res.writeHead(200).end('ok') })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return server
}

/** Exits once `close` has run, on the SIGTERM the benchmark sends to stop a process. */
export function onSigterm (close: () => Promise<void>): void {
  process.once('SIGTERM', () => {
    close().then(() => process.exit(0), () => process.exit(1))
  })
}

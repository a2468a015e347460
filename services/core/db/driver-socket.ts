import net from 'node:net'

// postgres.js (3.4.9) fails the statements queued on a connection when its socket emits
// 'error', and when it closes cleanly, but not when it closes after an error: it counts on the
// 'error' having failed them. Node emits 'close' a turn of the event loop after 'error', and
// meanwhile the pool still lists the connection as busy and pipelines new statements onto it
// (the write batcher retrying a failed batch row by row does exactly that). Those statements
// are never sent and never settle: once the connection reconnects it takes the first for the
// one in flight and waits for its answer for ever, lost to the pool (or, if the connection
// was idle, answers it with the empty result of the new session's first exchange). A backend
// terminated (pg_terminate_backend, a failover) while statements are on their way to it
// resets the socket: killing a pool's backends every ~150 ms for 30 s under load left 10 to
// 38 statements unsettled in 3 runs of 5.
//
// The socket below says 'error' once more just before 'close', so the driver fails whatever
// was queued on it since the first one (its handler fails every queued statement; the ones
// failed already ignore a second rejection). Statements handed to the connection after
// 'close' go to a new socket, as before. A TLS connection wraps this socket in its own and is
// not covered.

/**
 * A TCP socket that repeats its last error just before 'close'. Listeners, not an emit
 * override: every 'data' event of every statement goes through emit.
 */
class ErrorBeforeCloseSocket extends net.Socket {
  constructor () {
    super()
    let lastError: unknown
    this.on('error', (err) => { lastError = err })
    // First among the 'close' listeners: the driver's own are added after this.
    this.prependListener('close', () => {
      if (lastError !== undefined) this.emit('error', lastError)
    })
  }
}

type SocketTarget = { host: string[], port: number[], path?: string | false | undefined }

/**
 * postgres.js' `socket` option: connects to the first host as the driver would (it writes the
 * startup message at once; the socket buffers it until connected). Multiple hosts are left
 * to the driver (see `driverSocketOption`), which cycles through them itself.
 */
export function connectDriverSocket (target: SocketTarget): net.Socket {
  const socket = new ErrorBeforeCloseSocket()
  if (target.path) return socket.connect(target.path)
  const [host, port] = [target.host[0]!, target.port[0]!]
  // Where the driver's connection errors ("write CONNECT_TIMEOUT host:port") read the address.
  return Object.assign(socket.connect(port, host), { host, port })
}

/** The `socket` option for a client of `url`: undefined (the driver's own socket) when it names several hosts. */
export function driverSocketOption (url: string): { socket?: typeof connectDriverSocket } {
  const authority = url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split(/[/?]/)[0] ?? ''
  const hosts = authority.slice(authority.lastIndexOf('@') + 1)
  return hosts.includes(',') ? {} : { socket: connectDriverSocket }
}

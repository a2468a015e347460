import { execFile } from 'node:child_process'
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './fault-services.ts'

type Teardown = { teardown: (fn: () => unknown) => void }

const run = promisify(execFile)
const PG_ROOT = '/usr/lib/postgresql'

/** The newest installed PostgreSQL's bin directory (Debian's layout), or undefined. */
export function postgresBinDir (): string | undefined {
  try {
    const versions = readdirSync(PG_ROOT).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
    return versions[0] ? join(PG_ROOT, versions[0], 'bin') : undefined
  } catch {
    return undefined
  }
}

/**
 * A PostgreSQL cluster of the test's own, from the installed binaries, on a free port in a
 * temporary directory, which the test may restart. initdb refuses to run as root, so under
 * root the cluster belongs to the `postgres` account and its commands run through runuser.
 * Durability settings are off: the drills restart the server cleanly, they never crash it.
 */
export async function startPrivatePostgres (t: Teardown) {
  const bin = postgresBinDir()
  if (!bin) throw new Error(`no PostgreSQL under ${PG_ROOT}: the drill needs initdb and pg_ctl`)
  const dir = mkdtempSync(join(tmpdir(), 'tasklane-pg-'))
  const data = join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres'])
    chownSync(dir, Number(stdout.trim()), -1)
  }
  const pg = (tool: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]) : run(join(bin, tool), args)
  const port = await freePort()
  const options = [
    `-p ${port}`, `-k ${dir}`, '-c listen_addresses=127.0.0.1', '-c max_connections=200',
    '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off',
  ].join(' ')
  const ctl = (...args: string[]) => pg('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '60', ...args])

  await pg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'])
  await ctl('start')
  t.teardown(async () => {
    await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    /** `pg_ctl restart -m fast`: sessions are terminated, the server stops and starts again. */
    restart: () => ctl('-m', 'fast', 'restart'),
    stop: () => ctl('-m', 'fast', 'stop'),
    start: () => ctl('start'),
  }
}

import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const KEYS_COMMAND = fileURLToPath(new URL('../../services/core/auth/keys-command.ts', import.meta.url))

/** Runs the real `npm run keys` module against a test database; resolves with its stdout. */
export async function keysCommand (databaseUrl: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [KEYS_COMMAND, ...args], {
    env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', TASKLANE_API_KEYS: '', TASKLANE_ADMIN_KEY: '' },
    timeout: 30_000,
  })
  return stdout
}

/** Creates a key with the CLI and returns it with its id. */
export async function createKey (databaseUrl: string, tenant: string): Promise<{ id: string, key: string, tenant: string }> {
  return JSON.parse(await keysCommand(databaseUrl, ['create', '--tenant', tenant, '--json']))
}

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

export type Entries = { api: string, worker: string }

const BUILT: Entries = { api: 'dist/api/server.js', worker: 'dist/worker/main.js' }
const SOURCES: Entries = { api: 'services/api/server.ts', worker: 'services/worker/main.ts' }

/**
 * The API and worker entry points of a checkout, built first: the benchmark measures the
 * JavaScript the images run (`npm run build`), not the .ts files, whose type stripping alone
 * keeps tens of MB more resident. A checkout without the build step (an older baseline) runs
 * its sources, as it shipped them.
 */
export async function buildServices (root: string): Promise<Entries> {
  if (!existsSync(join(root, 'tsconfig.build.json'))) return SOURCES
  try {
    await promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: root, maxBuffer: 16 << 20 })
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string, stderr?: string }
    throw new Error(`npm run build in ${root} failed:\n${stdout ?? ''}${stderr ?? ''}`)
  }
  return BUILT
}

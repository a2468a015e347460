import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, cpSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'

/** Entry points as absolute paths, and the build to remove when the run ends (none for sources). */
export type Entries = { api: string, worker: string, remove: () => void }

/**
 * The API and worker entry points of a checkout, built first: the benchmark measures the
 * JavaScript the images run, not the .ts files, whose type stripping alone keeps tens of MB
 * more resident. It is `npm run build` (tsconfig.build.json, then the SQL migrations) into a
 * directory of this run's own under .tmp/, so runs at once (the test suite's smoke runs) never
 * rebuild each other's dist/ under their processes. package.json goes beside it: files find
 * it by a relative URL, as they find the repository's from dist/, and it makes the files ESM.
 * A checkout without the build step (an older baseline) runs its sources, as it shipped them.
 */
export async function buildServices (root: string): Promise<Entries> {
  if (!existsSync(join(root, 'tsconfig.build.json'))) {
    return { api: join(root, 'services/api/server.ts'), worker: join(root, 'services/worker/main.ts'), remove: () => {} }
  }
  const dir = join(root, '.tmp', `bench-build-${randomBytes(4).toString('hex')}`)
  const out = join(dir, 'dist')
  mkdirSync(dir, { recursive: true })
  try {
    await compile(root, 'tsconfig.build.json', out)
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  cpSync(join(root, 'services/core/db/migrations'), join(out, 'core/db/migrations'), { recursive: true })
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'))
  return { api: join(out, 'api/server.js'), worker: join(out, 'worker/main.js'), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * The peers of the peers phase (bench/peers/*.ts) compiled into a directory of this run's own,
 * so that they run JavaScript as Tasklane does; `path('by-hand-api')` is an entry point.
 */
export async function buildPeers (root: string): Promise<{ path: (name: string) => string, remove: () => void }> {
  const dir = join(root, '.tmp', `bench-peers-${randomBytes(4).toString('hex')}`)
  mkdirSync(dir, { recursive: true })
  try {
    await compile(root, 'bench/peers/tsconfig.json', join(dir, 'peers'))
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'))
  return { path: (name) => join(dir, 'peers', `${name}.js`), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

async function compile (root: string, project: string, out: string): Promise<void> {
  try {
    // Through sh, which drops NODE_OPTIONS: under the test runner every child of this process gets
    // the runner's module hooks in it, and they break tsc's launcher.
    await promisify(execFile)('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', join(root, 'node_modules/.bin/tsc'), '-p', project, '--outDir', out],
      { cwd: root, env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` }, maxBuffer: 16 << 20 })
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string, stderr?: string }
    throw new Error(`building ${root} (tsc -p ${project}) failed:\n${stdout ?? ''}${stderr ?? ''}`)
  }
}

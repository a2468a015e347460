import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { execForm, exposedPorts, findAll, findLast, parseDockerfile, stageEnv, type Dockerfile } from './helpers/dockerfile-parser.ts'
import { sourceOf } from './helpers/built-entry.ts'
import { startHarness } from './helpers/harness.ts'

// Checked statically here, and what can run without an engine is run for real (the HEALTHCHECK
// command, the production dependency set); scripts/image-check.sh builds and runs the images.
const ROOT = new URL('..', import.meta.url).pathname
const IMAGES = [
  { file: 'Dockerfile.api', final: 'api', entry: 'dist/api/server.js', healthPortEnv: 'PORT', ports: [3000, 9464] },
  { file: 'Dockerfile.worker', final: 'worker', entry: 'dist/worker/main.js', healthPortEnv: 'METRICS_PORT', ports: [9464] },
] as const
const parsed = new Map<string, Dockerfile>(IMAGES.map((image) => [image.file, parseDockerfile(join(ROOT, image.file))]))
const stageOf = (file: string, name: string) => parsed.get(file)!.stages.find((s) => s.name === name)

/** The .dockerignore allow-list: `*` first, then `!path` entries. */
function contextAllows (path: string): boolean {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  let allowed = true
  for (const pattern of lines) {
    const negate = pattern.startsWith('!')
    const body = pattern.replace(/^!/, '').replace(/\/$/, '')
    const matches = body === '*' || path === body || path.startsWith(`${body}/`) ||
      (body.startsWith('**/') && new RegExp(`(^|/)${body.slice(3).replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`).test(path))
    if (matches) allowed = negate
  }
  return allowed
}

t.test('both images start from Node 24 LTS slim and share their build and runtime stages word for word', async (t) => {
  for (const { file, final } of IMAGES) {
    const df = parsed.get(file)!
    t.match(df.args.NODE_IMAGE, /^node:24([.-][\w.]*)?-(bookworm-|trixie-)?slim(@sha256:[0-9a-f]{64})?$/, `${file}: NODE_IMAGE is a Node 24 slim tag`)
    t.same(df.stages.map((s) => s.name), ['build', 'runtime', final], `${file}: stages build -> runtime -> ${final}`)
    for (const stage of df.stages) {
      t.ok(stage.from === '${NODE_IMAGE}' || df.stages.some((s) => s.name === stage.from), `${file}: ${stage.name} is FROM the Node image or a local stage`)
    }
    t.equal(stageOf(file, final)!.from, 'runtime', `${file}: the final stage builds on runtime`)
  }
  const [api, worker] = IMAGES.map((i) => parsed.get(i.file)!)
  t.equal(api!.args.NODE_IMAGE, worker!.args.NODE_IMAGE, 'the same base image')
  for (const name of ['build', 'runtime']) {
    t.equal(stageOf('Dockerfile.api', name)!.text, stageOf('Dockerfile.worker', name)!.text, `the ${name} stage is identical, so BuildKit builds it once`)
  }
})

t.test('the build stage installs from the lockfile, builds dist/, then prunes to production dependencies', async (t) => {
  const build = stageOf('Dockerfile.api', 'build')!
  const runs = findAll(build, 'RUN').map((i) => i.args)
  const order = (needle: RegExp) => runs.findIndex((r) => needle.test(r))
  t.ok(order(/\bnpm ci\b/) >= 0, 'npm ci')
  t.ok(order(/\bnpm run build\b/) > order(/\bnpm ci\b/), 'npm run build after npm ci')
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  // tsc type-checks what it compiles and exits non-zero on an error, which fails the RUN.
  t.match(pkg.scripts.build, /\btsc -p tsconfig\.build\.json\b/, 'the build runs tsc on the build config')
  t.match(pkg.scripts.build, /services\/core\/db\/migrations dist\/core\/db\/migrations/, 'the build copies the SQL migrations the migrator reads')
  const prune = runs.find((r) => /npm prune --omit=dev/.test(r)) ?? ''
  t.ok(prune.indexOf('npm prune') > prune.indexOf('npm run build'), 'dev dependencies pruned after the build')
  t.match(prune, /test ! -e node_modules\/node\b/, 'the build fails if the `node` devDependency survived')
  const runtime = stageOf('Dockerfile.api', 'runtime')!
  for (const copy of findAll(runtime, 'COPY')) {
    t.match(copy.args, /^--from=build\s/, `runtime copies only from the build stage: COPY ${copy.args}`)
  }
  const copied = findAll(runtime, 'COPY').map((c) => c.args.split(/\s+/)[1])
  t.same(copied.sort(), ['/app/dist', '/app/node_modules', '/app/package.json'], 'package.json, pruned node_modules and the built dist/ only')
})

t.test('every COPY from the build context exists and passes .dockerignore', async (t) => {
  t.equal(readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').find((l) => l.trim() && !l.startsWith('#')), '*', '.dockerignore is an allow-list')
  for (const { file } of IMAGES) {
    for (const stage of parsed.get(file)!.stages) {
      for (const copy of findAll(stage, 'COPY').filter((c) => !c.args.startsWith('--from='))) {
        const sources = copy.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1)
        for (const source of sources) {
          t.ok(existsSync(join(ROOT, source)), `${file}: ${source} exists`)
          t.ok(contextAllows(source.replace(/^\.\//, '')), `${file}: ${source} is in the build context`)
        }
      }
    }
  }
  t.ok(contextAllows('tsconfig.build.json'), 'the build config is in the build context')
  for (const excluded of ['node_modules', '.git', 'dist', 'test/pipeline.test.ts', 'k8s', '.env']) {
    t.notOk(contextAllows(excluded), `${excluded} stays out of the build context`)
  }
})

t.test('each image runs as a non-root user under tini, with its CMD file present and its ports exposed', async (t) => {
  for (const { file, final, entry, ports } of IMAGES) {
    const df = parsed.get(file)!
    const user = findLast(stageOf(file, 'runtime')!, 'USER')?.args ?? findLast(stageOf(file, final)!, 'USER')?.args
    t.match(user, /^[1-9][0-9]*(:[1-9][0-9]*)?$/, `${file}: USER is a numeric non-root uid (runAsNonRoot can verify it)`)
    t.notOk(findAll(stageOf(file, final)!, 'USER').some((u) => /^(0|root)\b/.test(u.args)), `${file}: no switch back to root`)
    t.same(execForm(findLast(stageOf(file, 'runtime')!, 'ENTRYPOINT')!.args), ['/usr/bin/tini', '--'], `${file}: tini is PID 1 and forwards signals`)
    t.ok(findAll(stageOf(file, 'runtime')!, 'RUN').some((r) => /apt-get install[^&]*\btini\b/.test(r.args)), `${file}: tini is installed`)
    const cmd = execForm(findLast(stageOf(file, final)!, 'CMD')!.args)
    t.same(cmd, ['node', entry], `${file}: CMD runs ${entry} on the image's node`)
    t.ok(existsSync(join(ROOT, sourceOf(entry))), `${entry} is built from ${sourceOf(entry)}, which exists`)
    t.ok(contextAllows(sourceOf(entry)), `${sourceOf(entry)} is in the build context`)
    t.same(exposedPorts(df, final).sort(), [...ports].sort(), `${file}: EXPOSE ${ports.join(' ')}`)
  }
})

t.test('every package the services import is a production dependency', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  const files: string[] = []
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) walk(path)
      else if (name.endsWith('.ts')) files.push(path)
    }
  }
  walk(join(ROOT, 'services'))
  const imported = new Map<string, string>()
  for (const path of files) {
    const source = readFileSync(path, 'utf8')
    // `import type` is erased before Node runs the file, so it needs no runtime package.
    for (const m of source.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^'"]*?from\s+'([^'.][^']*)'|import\(\s*'([^'.][^']*)'\s*\)/gm)) {
      const spec = (m[1] ?? m[2])!
      if (spec.startsWith('node:')) continue
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
      imported.set(name, path.slice(ROOT.length))
    }
  }
  t.ok(imported.size > 5, 'found the services\' imports')
  for (const [name, where] of imported) {
    t.ok(pkg.dependencies[name], `${name} (imported by ${where}) is in dependencies, so the pruned image has it`)
  }
})

/** Runs a HEALTHCHECK's exec form exactly as Docker would, with the container's env. */
async function runHealthcheck (argv: string[], env: Record<string, string>): Promise<number | null> {
  const child = spawn(process.execPath, argv.slice(1), { env: { ...process.env, ...env }, stdio: 'ignore' })
  const [code] = await once(child, 'exit') as [number | null]
  return code
}

t.test('the HEALTHCHECK commands pass against the running services and fail when nothing answers', async (t) => {
  for (const { file, final, healthPortEnv } of IMAGES) {
    const check = findLast(stageOf(file, final)!, 'HEALTHCHECK')
    t.ok(check, `${file}: HEALTHCHECK present`)
    t.match(check!.args, /--interval=\d+s/, `${file}: with an interval`)
    const argv = execForm(check!.args.slice(check!.args.indexOf('CMD')))!
    t.equal(argv[0], 'node', `${file}: run by node (slim has no curl)`)
    t.match(argv.join(' '), new RegExp(`process\\.env\\.${healthPortEnv}\\b.*/healthz`), `${file}: GET /healthz on ${healthPortEnv}`)
    t.equal(stageEnv(parsed.get(file)!, final)[healthPortEnv] !== undefined, true, `${file}: ${healthPortEnv} has an image default`)
  }
  const h = await startHarness(t, { worker: false })
  const worker = await h.startWorker({ METRICS_PORT: '0' })
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const apiPort = String((h.app.server.address() as AddressInfo).port)
  const [apiCheck, workerCheck] = IMAGES.map(({ file, final }) => {
    const check = findLast(stageOf(file, final)!, 'HEALTHCHECK')!
    return execForm(check.args.slice(check.args.indexOf('CMD')))!
  })
  t.equal(await runHealthcheck(apiCheck!, { PORT: apiPort }), 0, 'API healthy')
  t.equal(await runHealthcheck(workerCheck!, { METRICS_PORT: String(worker.opsPort) }), 0, 'worker healthy')
  const silent = String(await closedPort())
  t.equal(await runHealthcheck(apiCheck!, { PORT: silent }), 1, 'API check fails when nothing answers')
  t.equal(await runHealthcheck(workerCheck!, { METRICS_PORT: silent }), 1, 'worker check fails when nothing answers')
})

/** A port that was free a moment ago and has nothing listening on it now. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

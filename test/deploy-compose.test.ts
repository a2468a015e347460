import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Ajv } from 'ajv'
import { Redis } from 'ioredis'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../services/core/config.ts'
import { resolveQueueConcurrency } from '../services/core/queues/queue-defaults.ts'
import { builtinTaskTypes } from '../services/core/task-types/builtin-types.ts'
import { sourceOf } from './helpers/built-entry.ts'
import { execForm, exposedPorts, findLast, parseDockerfile } from './helpers/dockerfile-parser.ts'

// docker-compose.yml, checked without a Docker engine: against the Compose specification's
// JSON schema (test/fixtures/compose-spec.json, vendored from compose-spec/compose-spec
// schema/compose-spec.json at 170098ba07d9f53c383a41bfd4c5166b0a4529a6, Apache-2.0), and
// against the project: Dockerfiles, stages, commands, ports, env and mounted files exist.
const ROOT = new URL('..', import.meta.url).pathname

type Service = {
  image?: string
  build?: { context: string, dockerfile: string, target?: string }
  command?: string[]
  environment?: Record<string, string>
  ports?: string[]
  expose?: string[]
  volumes?: string[]
  depends_on?: Record<string, { condition: string }> | string[]
  deploy?: { replicas?: number }
  read_only?: boolean
  cap_drop?: string[]
  security_opt?: string[]
  stop_grace_period?: string
  restart?: string
  healthcheck?: { test?: string[], disable?: boolean }
}
const raw = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')
// Compose resolves `<<:` merge keys (extension fields), so the parse does too.
const compose = parse(raw, { merge: true }) as { services: Record<string, Service>, volumes?: Record<string, unknown> }
const services = compose.services
const APP_SERVICES = ['migrate', 'api', 'worker'] as const

/** `${VAR:-default}` as compose resolves it with VAR unset. */
const interpolate = (value: string): string => value.replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_m, _name, fallback: string | undefined) => fallback ?? '')
const envOf = (name: string): Record<string, string> =>
  Object.fromEntries(Object.entries(services[name]!.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]))
const seconds = (duration: string): number => {
  const m = /^(\d+)(ms|s|m)$/.exec(duration)
  if (!m) throw new Error(`not a duration: ${duration}`)
  return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 } as const)[m[2] as 'ms' | 's' | 'm']
}
/** Bind mounts as [host path relative to the repo, container path]. */
const binds = (name: string): [string, string][] => (services[name]!.volumes ?? [])
  .filter((v) => v.startsWith('./'))
  .map((v) => { const [host, container] = v.split(':'); return [host!.slice(2), container!] })

t.test('docker-compose.yml is valid against the Compose specification schema', async (t) => {
  const schema = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/compose-spec.json'), 'utf8')) as Record<string, unknown>
  t.equal(schema.title, 'Compose Specification', 'the vendored schema is the Compose spec')
  // The spec's meta-schema URL is not one Ajv bundles; the schema itself is what matters.
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false })
  const validate = ajv.compile(schema)
  const valid = validate(compose)
  t.ok(valid, 'valid Compose file')
  if (!valid) t.comment(JSON.stringify(validate.errors, null, 2))
  // The schema must be able to say no, or the check above proves nothing.
  t.notOk(validate({ services: { api: { ports: 'not-a-list', bogus: true } } }), 'the schema rejects a broken file')
})

t.test('the stack has its services: postgres, redis, migrate, api, two workers, prometheus, grafana', async (t) => {
  t.same(Object.keys(services).sort(), ['api', 'grafana', 'migrate', 'postgres', 'prometheus', 'redis', 'worker'])
  t.equal(services.worker!.deploy?.replicas, 2, 'two worker replicas')
  for (const [name, service] of Object.entries(services)) {
    if (service.build) continue
    t.match(service.image, /^[\w./-]+:[\w.-]+$/, `${name}: image has a tag`)
    t.notMatch(service.image, /:latest$/, `${name}: image tag is pinned, not latest`)
  }
})

t.test('every app service refers to a Dockerfile stage, a command file and ports that exist', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  const scriptFor: Record<string, string> = { migrate: 'migrate', api: 'start:api', worker: 'start:worker' }
  for (const name of APP_SERVICES) {
    const service = services[name]!
    const build = service.build!
    t.ok(build, `${name}: built from this repository`)
    t.equal(build.context, '.', `${name}: build context is the repository`)
    t.ok(existsSync(join(ROOT, build.dockerfile)), `${name}: ${build.dockerfile} exists`)
    const dockerfile = parseDockerfile(join(ROOT, build.dockerfile))
    const stage = dockerfile.stages.find((s) => s.name === build.target)
    t.ok(stage, `${name}: target stage ${build.target} exists in ${build.dockerfile}`)
    const command = service.command!
    t.equal(command[0], 'node', `${name}: runs on the image's node`)
    t.not(sourceOf(command[1]!), command[1], `${name}: runs built JavaScript, as the image's CMD does`)
    t.ok(existsSync(join(ROOT, sourceOf(command[1]!))), `${name}: ${command[1]} is built from ${sourceOf(command[1]!)}, which exists`)
    t.equal(pkg.scripts[scriptFor[name]!], command.join(' '), `${name}: the same command as npm run ${scriptFor[name]}`)
    if (name !== 'migrate') {
      t.same(execForm(findLast(stage!, 'CMD')!.args), command, `${name}: the image's own CMD`)
    }
    const env = envOf(name)
    const exposed = exposedPorts(dockerfile, build.target!)
    for (const mapping of service.ports ?? []) {
      const container = Number(mapping.split(':').at(-1))
      t.ok(exposed.includes(container), `${name}: published port ${container} is EXPOSEd by the image`)
      t.equal(String(container), env.PORT, `${name}: published port ${container} is the PORT it listens on`)
    }
    for (const port of service.expose ?? []) {
      t.ok(exposed.includes(Number(port)), `${name}: port ${port} is EXPOSEd by the image`)
      t.equal(port, env.METRICS_PORT, `${name}: port ${port} is its METRICS_PORT`)
    }
  }
  t.same(services.api!.ports, ['3000:3000'], 'the API is published on 3000')
  t.notOk(services.worker!.ports, 'workers publish no host port (two replicas could not share it)')
})

t.test('app services get a configuration the services accept, pointing at the stack\'s own datastores', async (t) => {
  for (const name of APP_SERVICES) {
    const env = envOf(name)
    const config = loadConfig(env)
    t.equal(new URL(config.DATABASE_URL).hostname, 'postgres', `${name}: DATABASE_URL names the postgres service`)
    t.equal(new URL(config.REDIS_URL).hostname, 'redis', `${name}: REDIS_URL names the redis service`)
    const pgEnv = envOf('postgres')
    const db = new URL(config.DATABASE_URL)
    t.same([db.username, db.password, db.pathname.slice(1)], [pgEnv.POSTGRES_USER, pgEnv.POSTGRES_PASSWORD, pgEnv.POSTGRES_DB], `${name}: the database postgres creates`)
    if (name === 'worker') {
      const queues = resolveQueueConcurrency(config.queues, [...new Set(builtinTaskTypes.map((type) => type.queue))])
      t.same(queues.map((q) => q.name).sort(), ['default', 'http'], 'the workers consume every queue')
    }
    const graceSeconds = config.TASKLANE_SHUTDOWN_GRACE_MS / 1000
    // close-with-grace in the worker allows the drain grace plus 5 s before it gives up.
    t.ok(seconds(services[name]!.stop_grace_period!) > graceSeconds + 5, `${name}: stop_grace_period above the shutdown grace`)
  }
  t.same(services.migrate!.depends_on, { postgres: { condition: 'service_healthy' } }, 'migrate waits for a healthy postgres')
  t.equal(services.migrate!.restart, 'no', 'migrate runs once')
  for (const name of ['api', 'worker']) {
    t.match(services[name]!.depends_on, { migrate: { condition: 'service_completed_successfully' }, redis: { condition: 'service_healthy' } }, `${name} starts after the migrations and a healthy redis`)
  }
})

t.test('app containers run hardened: read-only root, no capabilities, no privilege gain', async (t) => {
  for (const name of APP_SERVICES) {
    const service = services[name]!
    t.equal(service.read_only, true, `${name}: read-only root filesystem`)
    t.same(service.cap_drop, ['ALL'], `${name}: every capability dropped`)
    t.ok(service.security_opt?.includes('no-new-privileges:true'), `${name}: no-new-privileges`)
  }
})

t.test('every mounted file exists, and Prometheus and Grafana are wired to the stack', async (t) => {
  for (const name of Object.keys(services)) {
    for (const [host] of binds(name)) t.ok(existsSync(join(ROOT, host)), `${name}: ${host} exists`)
  }
  t.same(services.redis!.command, ['redis-server', binds('redis')[0]![1]], 'redis runs with the mounted deploy/redis.conf')

  const promArg = services.prometheus!.command!.find((a) => a.startsWith('--config.file='))!.split('=')[1]!
  const [promHost, promMount] = binds('prometheus').find(([, container]) => promArg.startsWith(`${container}/`))!
  const promConfigPath = join(ROOT, promHost, promArg.slice(promMount.length))
  t.ok(existsSync(promConfigPath), 'prometheus --config.file is a mounted file that exists')
  const prom = parse(readFileSync(promConfigPath, 'utf8')) as { scrape_configs: { job_name: string, static_configs?: { targets: string[] }[], dns_sd_configs?: { names: string[], port: number }[] }[] }
  const scraped = new Set<string>()
  for (const job of prom.scrape_configs) {
    const targets = [
      ...(job.static_configs ?? []).flatMap((c) => c.targets),
      ...(job.dns_sd_configs ?? []).flatMap((c) => c.names.map((n) => `${n}:${c.port}`)),
    ]
    for (const target of targets) {
      const [host, port] = target.split(':')
      if (host === 'localhost') continue
      t.ok(services[host!], `prometheus job ${job.job_name} scrapes ${target}, a compose service`)
      t.equal(port, envOf(host!).METRICS_PORT, `${target} is that service's METRICS_PORT`)
      scraped.add(host!)
    }
  }
  t.ok(scraped.has('api') && scraped.has('worker'), 'Prometheus scrapes the API and the workers')

  const provisioning = binds('grafana').find(([, container]) => container === '/etc/grafana/provisioning')
  t.ok(provisioning, 'Grafana provisioning is mounted where Grafana reads it')
  const datasources = readdirSync(join(ROOT, provisioning![0], 'datasources')).map((f) => parse(readFileSync(join(ROOT, provisioning![0], 'datasources', f), 'utf8')) as { datasources: { type: string, url: string }[] })
  const promSource = datasources.flatMap((d) => d.datasources).find((d) => d.type === 'prometheus')
  t.equal(promSource?.url, 'http://prometheus:9090', 'the Grafana datasource is the prometheus service')
  t.ok(services.prometheus!.ports!.some((p) => p.endsWith(':9090')), 'prometheus listens on 9090')
  const providers = readdirSync(join(ROOT, provisioning![0], 'dashboards')).flatMap((f) => (parse(readFileSync(join(ROOT, provisioning![0], 'dashboards', f), 'utf8')) as { providers: { options: { path: string } }[] }).providers)
  for (const provider of providers) {
    const mount = binds('grafana').find(([, container]) => provider.options.path === container || provider.options.path.startsWith(`${container}/`))
    t.ok(mount, `dashboard provider path ${provider.options.path} is a mounted directory`)
    const dir = join(ROOT, mount![0], provider.options.path.slice(mount![1].length))
    t.ok(statSync(dir).isDirectory() && readdirSync(dir).some((f) => f.endsWith('.json')), `${dir} holds dashboards`)
  }
})

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

t.test('deploy/redis.conf loads in a real redis-server with noeviction and AOF on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tasklane-redis-conf-'))
  const port = await freePort()
  // The file as compose mounts it; only where it listens and writes differs here.
  const child = spawn('redis-server', [join(ROOT, 'deploy/redis.conf'), '--port', String(port), '--bind', '127.0.0.1', '--dir', dir], { stdio: 'ignore' })
  t.teardown(async () => {
    if (child.exitCode === null) { child.kill('SIGKILL'); await once(child, 'exit') }
    rmSync(dir, { recursive: true, force: true })
  })
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {}) // refused connects while redis-server starts; the loop retries
  t.teardown(() => redis.disconnect())
  for (let i = 0; ; i++) {
    try { await redis.connect(); break } catch (err) {
      if (i >= 50 || child.exitCode !== null) throw err
      await sleep(100)
    }
  }
  t.same(await redis.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction'])
  t.same(await redis.config('GET', 'appendonly'), ['appendonly', 'yes'])
  t.same(await redis.config('GET', 'appendfsync'), ['appendfsync', 'everysec'])
})

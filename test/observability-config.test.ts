import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { createMetricsListener } from '../services/api/metrics-listener.ts'
import { startHarness, waitFor } from './helpers/harness.ts'
import { collectMetricReferences, metricNamesInPromQL } from './helpers/metric-references.ts'
import { parseMetrics, scrape, seriesNames, sum } from './helpers/prom-text.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
// Series Prometheus makes itself for every target, not read from /metrics.
const PROMETHEUS_BUILTINS = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped'])

function promtool (...args: string[]) {
  const result = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  if (result.error) throw result.error
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() }
}

t.test('promtool accepts the Prometheus configuration, the rules and the rule unit tests', async (t) => {
  const config = promtool('check', 'config', 'deploy/prometheus/prometheus.yml')
  t.equal(config.status, 0, config.output)
  t.match(config.output, /SUCCESS: 2 rule files found/, 'the config loads both rule files')
  const rules = promtool('check', 'rules', 'deploy/prometheus/rules/tasklane-recording.yml', 'deploy/prometheus/rules/tasklane-alerts.yml')
  t.equal(rules.status, 0, rules.output)
  const unit = promtool('test', 'rules', 'deploy/prometheus/tests/tasklane-alerts.test.yml')
  t.equal(unit.status, 0, unit.output)
})

t.test('the PromQL name extractor finds metric names and nothing else', async (t) => {
  t.same(metricNamesInPromQL('sum by (queue) (rate(a_total{x="b",y=~"c|d"}[5m] offset 1h)) / on (queue) group_left (z) b > 0.5 and histogram_quantile(0.9, c_bucket) unless rec:x:y'),
    ['a_total', 'b', 'c_bucket', 'rec:x:y'])
  t.same(metricNamesInPromQL('max by (queue) (<<.Series>>{<<.LabelMatchers>>})'), [])
  t.same(metricNamesInPromQL('rate(m_count{route!~"/healthz"}[$__rate_interval])'), ['m_count'])
})

t.test('Grafana provisioning: datasource, dashboard provider and the panels operators look at', async (t) => {
  const datasources = parse(readFileSync(`${ROOT}/deploy/grafana/provisioning/datasources/prometheus.yml`, 'utf8'))
  t.match(datasources, { apiVersion: 1, datasources: [{ type: 'prometheus', uid: 'prometheus' }] })
  const providers = parse(readFileSync(`${ROOT}/deploy/grafana/provisioning/dashboards/tasklane.yml`, 'utf8'))
  const path = providers.providers[0].options.path as string
  const compose = readFileSync(`${ROOT}/docker-compose.yml`, 'utf8')
  t.ok(compose.includes(`./deploy/grafana/dashboards:${path}`), `compose mounts the dashboards where the provider reads them (${path})`)
  t.ok(compose.includes('./deploy/grafana/provisioning:/etc/grafana/provisioning'), 'compose mounts the provisioning directory')
  const dashboard = JSON.parse(readFileSync(`${ROOT}/deploy/grafana/dashboards/tasklane-overview.json`, 'utf8'))
  const panels = dashboard.panels.filter((p: { type: string }) => p.type !== 'row')
  const titles = panels.map((p: { title: string }) => p.title).join(' | ')
  for (const wanted of [/Queue depth by state/, /created \/ finished/, /Task duration p50 \/ p95 \/ p99/, /Task wait p50 \/ p95 \/ p99/,
    /Failure ratio/, /Active tasks vs concurrency per worker/, /Request rate/, /Request latency/, /Errors/, /Event-loop lag/, /Heap/]) {
    t.match(titles, wanted)
  }
  const ids = panels.map((p: { id: number }) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const panel of panels) t.ok(panel.targets?.length > 0 && panel.targets.every((q: { expr?: string }) => q.expr), `${panel.title} has queries`)
})

t.test('every metric name read by dashboards, rules and Kubernetes autoscalers exists in real /metrics output', async (t) => {
  const h = await startHarness(t)
  const listener = createMetricsListener({ registry: h.deps.metrics.registry })
  const apiPort = await listener.listen(0, '127.0.0.1')
  t.teardown(() => listener.close())
  const worker = await h.startWorker()
  // One task through the pipeline and one request through the API fill every histogram.
  const task = await h.createTask({ type: 'echo', payload: {} })
  await h.waitForTerminal([task.id])
  const workerText = await waitFor(async () => {
    const text = await scrape(`http://127.0.0.1:${worker.opsPort}/metrics`)
    return sum(parseMetrics(text), 'tasklane_tasks_finished_total') >= 1 ? text : undefined
  })
  const apiText = await scrape(`http://127.0.0.1:${apiPort}/metrics`)
  const exposed = new Set([...seriesNames(apiText), ...seriesNames(workerText)])

  const { references, recorded, files } = collectMetricReferences(ROOT)
  t.ok(files.some((f) => f.startsWith('deploy/grafana/dashboards/')), 'dashboards were read')
  t.ok(files.some((f) => f.startsWith('deploy/prometheus/rules/')), 'rules were read')
  const k8sFiles = files.filter((f) => f.startsWith('k8s/'))
  t.comment(`read ${files.length} files (${k8sFiles.length} under k8s/), ${new Set(references.map((r) => r.name)).size} distinct names`)
  const fromK8s = references.filter((r) => r.file.startsWith('k8s/'))
  if (k8sFiles.some((f) => /scaledobject|hpa|adapter/i.test(f))) {
    t.ok(fromK8s.some((r) => r.name === 'tasklane_queue_backlog'), 'the autoscaler manifests read tasklane_queue_backlog')
  }
  const missing = references.filter((r) => !exposed.has(r.name) && !recorded.has(r.name) && !PROMETHEUS_BUILTINS.has(r.name))
  t.same(missing, [], 'no reference to a metric that /metrics does not expose')
  for (const name of ['tasklane_queue_backlog', 'tasklane_tasks_finished_total', 'tasklane_task_duration_seconds_bucket', 'http_request_duration_seconds_bucket', 'nodejs_eventloop_lag_p99_seconds']) {
    t.ok(references.some((r) => r.name === name), `something reads ${name}`)
  }
})

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Registry } from 'prom-client'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../services/core/config.ts'
import { startHarness } from './helpers/harness.ts'
import { byKind, overlays, render, ROOT, type K8sObject } from './helpers/k8s-manifests.ts'

// Worker autoscaling, two ways (HPA on prometheus-adapter External metrics; KEDA), checked
// for wiring and arithmetic, and against the metrics a real worker and API export.
const OVERLAYS = overlays()
const rendered = new Map(OVERLAYS.map((name) => [name, render(name)]))
const ADAPTER_VALUES = 'k8s/components/autoscaling-hpa/prometheus-adapter-values.yaml'

type Group = { deployment: string, queues: { name: string, concurrency: number }[], env: Record<string, string> }
/** Worker Deployments with the queues and concurrency their TASKLANE_QUEUES gives them. */
function workerGroups (objects: K8sObject[]): Group[] {
  const config = byKind(objects, 'ConfigMap')[0]!.data!
  return byKind(objects, 'Deployment')
    .filter((d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'worker')
    .map((d) => {
      const env = Object.fromEntries((d.spec.template.spec.containers[0].env ?? []).map((e: { name: string, value: string }) => [e.name, e.value]))
      return { deployment: d.metadata.name, queues: [...loadConfig({ ...config, ...env }).queues], env }
    })
}

/** One autoscaling signal: the metric it reads, for which queue, and the value per replica. */
type Signal = { source: string, metric: string, queue: string, perReplica: number }
function signalsOf (autoscaler: K8sObject): Signal[] {
  const source = `${autoscaler.kind} ${autoscaler.metadata.name}`
  if (autoscaler.kind === 'HorizontalPodAutoscaler') {
    return autoscaler.spec.metrics.filter((m: { type: string }) => m.type === 'External').map((m: any) => ({
      source, metric: m.external.metric.name, queue: m.external.metric.selector.matchLabels.queue, perReplica: Number(m.external.target.averageValue),
    }))
  }
  return autoscaler.spec.triggers.map((trigger: any) => ({
    source,
    metric: /\b(tasklane_\w+)\{/.exec(trigger.metadata.query)?.[1] ?? '',
    queue: /queue="([^"]+)"/.exec(trigger.metadata.query)?.[1] ?? '',
    perReplica: Number(trigger.metadata.threshold),
  }))
}

const workerAutoscalers = (objects: K8sObject[]): K8sObject[] => [...byKind(objects, 'HorizontalPodAutoscaler'), ...byKind(objects, 'ScaledObject')]
  .filter((a) => a.spec.scaleTargetRef.name.startsWith('tasklane-worker-'))

for (const overlay of OVERLAYS) {
  const objects = rendered.get(overlay)!

  t.test(`${overlay}: each worker group has exactly one autoscaler, and no Deployment fights it over replicas`, async (t) => {
    const groups = workerGroups(objects)
    t.ok(groups.length >= 2, 'a Deployment per queue group')
    const kinds = new Set<string>()
    for (const group of groups) {
      const owners = workerAutoscalers(objects).filter((a) => a.spec.scaleTargetRef.name === group.deployment)
      t.equal(owners.length, 1, `${group.deployment}: one autoscaler (${owners.map((o) => o.kind).join(', ')})`)
      for (const owner of owners) kinds.add(owner.kind)
    }
    t.equal(kinds.size, 1, `${overlay} uses one autoscaling method for all workers: ${[...kinds].join(', ')}`)
    for (const deployment of byKind(objects, 'Deployment')) {
      t.equal(deployment.spec.replicas, undefined, `${deployment.metadata.name}: no spec.replicas (its autoscaler owns the count)`)
    }
  })

  t.test(`${overlay}: the scaling arithmetic: one replica per <concurrency> ready or running tasks, slow to scale down`, async (t) => {
    for (const group of workerGroups(objects)) {
      const autoscaler = workerAutoscalers(objects).find((a) => a.spec.scaleTargetRef.name === group.deployment)!
      const signals = signalsOf(autoscaler)
      t.same(signals.map((s) => s.metric).sort(), ['tasklane_queue_backlog', 'tasklane_worker_active_tasks'], `${group.deployment}: scales on backlog and on running tasks`)
      for (const signal of signals) {
        const queue = group.queues.find((q) => q.name === signal.queue)
        t.ok(queue, `${signal.source}: ${signal.metric} reads queue ${signal.queue}, which this group consumes`)
        t.equal(signal.perReplica, queue?.concurrency, `${signal.source}: ${signal.metric} target per replica = the group's concurrency`)
      }
      const isKeda = autoscaler.kind === 'ScaledObject'
      const behavior = isKeda ? autoscaler.spec.advanced.horizontalPodAutoscalerConfig.behavior : autoscaler.spec.behavior
      t.ok(behavior.scaleDown.stabilizationWindowSeconds >= 120, `${group.deployment}: scale-down waits ${behavior.scaleDown.stabilizationWindowSeconds} s of lower recommendations`)
      t.ok(behavior.scaleDown.policies.every((p: { type: string, value: number }) => p.type === 'Pods' && p.value <= 2), `${group.deployment}: retires at most a pod or two per period`)
      t.equal(behavior.scaleUp.stabilizationWindowSeconds, 0, `${group.deployment}: scales up at once`)
      if (isKeda) {
        t.equal(autoscaler.spec.minReplicaCount, 0, `${group.deployment}: KEDA may scale to zero`)
        t.ok(autoscaler.spec.maxReplicaCount >= 1, 'with a ceiling')
        t.ok(autoscaler.spec.cooldownPeriod >= 60, 'and waits before going to zero')
        for (const trigger of autoscaler.spec.triggers) {
          t.equal(trigger.type, 'prometheus', 'a Prometheus trigger')
          t.match(trigger.metadata.serverAddress, /^https?:\/\//, 'with a server address')
          t.match(trigger.metadata.query, /namespace="tasklane"/, 'reads this namespace only')
        }
      } else {
        t.ok(autoscaler.spec.minReplicas >= 1 && autoscaler.spec.minReplicas <= autoscaler.spec.maxReplicas, `${group.deployment}: ${autoscaler.spec.minReplicas}..${autoscaler.spec.maxReplicas} replicas`)
      }
    }
  })
}

t.test('dev scales workers with KEDA, prod with the HPA and prometheus-adapter', async (t) => {
  t.ok(workerAutoscalers(rendered.get('dev')!).every((a) => a.kind === 'ScaledObject'), 'dev: KEDA')
  t.ok(workerAutoscalers(rendered.get('prod')!).every((a) => a.kind === 'HorizontalPodAutoscaler'), 'prod: HPA')
})

t.test('prometheus-adapter serves every External metric the HPAs ask for', async (t) => {
  const values = parse(readFileSync(join(ROOT, ADAPTER_VALUES), 'utf8')) as { rules: { default: boolean, external: { seriesQuery: string, name: { as: string }, metricsQuery: string, resources: { overrides: Record<string, { resource: string }> } }[] } }
  const rules = values.rules.external
  const hpaMetrics = new Set(OVERLAYS.flatMap((o) => byKind(rendered.get(o)!, 'HorizontalPodAutoscaler').flatMap(signalsOf)).map((s) => s.metric))
  t.ok(hpaMetrics.size >= 2, 'the HPAs read External metrics')
  for (const metric of hpaMetrics) {
    const rule = rules.find((r) => r.name.as === metric)
    t.ok(rule, `an external rule exposes ${metric}`)
    t.match(rule?.seriesQuery, new RegExp(`^${metric}\\{`), `its series are ${metric}`)
    t.match(rule?.metricsQuery, /by \(queue\)/, 'one value per queue, matching the HPA\'s queue selector')
    t.equal(rule?.resources.overrides.namespace?.resource, 'namespace', 'namespaced, so an HPA sees its own namespace only')
  }
  // API and workers export copies of one backlog: summing them would multiply it.
  t.match(rules.find((r) => r.name.as === 'tasklane_queue_backlog')?.metricsQuery, /^max /, 'backlog is taken with max')
  t.match(rules.find((r) => r.name.as === 'tasklane_worker_active_tasks')?.metricsQuery, /^sum /, 'active tasks add up across workers')
})

type Sample = { name: string, labels: Record<string, string>, value: number }
function parseExposition (text: string): Sample[] {
  return text.split('\n').filter((line) => line && !line.startsWith('#')).map((line) => {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)!
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]))
    return { name: m[1]!, labels, value: Number(m[3]) }
  })
}
const sampleOf = (samples: Sample[], name: string, queue: string) => samples.find((s) => s.name === name && s.labels.queue === queue)

t.test('the metrics the autoscalers read exist in the real /metrics output, with the numbers they assume', async (t) => {
  const signals = OVERLAYS.flatMap((o) => workerAutoscalers(rendered.get(o)!).flatMap(signalsOf))
  const groups = workerGroups(rendered.get('prod')!)
  const h = await startHarness(t, { worker: false })

  // No worker yet: the API's copy of the backlog is what lets KEDA scale a group from zero.
  await Promise.all([1, 2, 3].map((n) => h.createTask({ type: 'echo', payload: { n } })))
  const apiRegistry = (h.deps as unknown as { metrics?: { registry?: Registry } }).metrics?.registry
  t.ok(apiRegistry, 'the API has a metrics registry')
  if (apiRegistry) {
    const apiSamples = parseExposition(await apiRegistry.metrics())
    t.equal(sampleOf(apiSamples, 'tasklane_queue_backlog', 'default')?.value, 3, 'API: backlog{queue="default"} counts the 3 ready tasks')
    t.equal(sampleOf(apiSamples, 'tasklane_queue_backlog', 'http')?.value, 0, 'API: backlog{queue="http"} is 0')
  }

  // One real worker per group, configured as its Deployment configures it, scraped over HTTP.
  for (const group of groups) {
    const worker = await h.startWorker({ TASKLANE_QUEUES: group.env.TASKLANE_QUEUES!, METRICS_PORT: '0' })
    const res = await fetch(`http://127.0.0.1:${worker.opsPort}/metrics`)
    t.equal(res.status, 200, `${group.deployment}: /metrics answers`)
    const samples = parseExposition(await res.text())
    for (const queue of group.queues) {
      for (const signal of signals.filter((s) => s.queue === queue.name)) {
        t.ok(sampleOf(samples, signal.metric, queue.name), `${group.deployment}: ${signal.metric}{queue="${queue.name}"} (read by ${signal.source}) is exported`)
      }
      t.equal(sampleOf(samples, 'tasklane_worker_concurrency', queue.name)?.value, queue.concurrency, `${group.deployment}: reports concurrency ${queue.concurrency}, the per-replica target`)
    }
  }
})

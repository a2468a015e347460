import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../services/core/config.ts'
import { builtinTaskTypes } from '../services/core/task-types/builtin-types.ts'
import { sourceOf } from './helpers/built-entry.ts'
import { execForm, findLast, parseDockerfile } from './helpers/dockerfile-parser.ts'
import { byKind, named, overlays, render, ROOT, selects, validateObject, type K8sObject } from './helpers/k8s-manifests.ts'

// Every overlay is rendered with `kubectl kustomize` and every object validated against the
// Kubernetes schemas (kubernetes-models, with the KEDA and Prometheus Operator models), then
// checked for what the schemas cannot know: probes, resources, security, wiring, grace.
const OVERLAYS = overlays()
const rendered = new Map(OVERLAYS.map((name) => [name, render(name)]))
const KNOWN_QUEUES = [...new Set(builtinTaskTypes.map((type) => type.queue))].sort()
const IMAGE_ENTRY: Record<string, string[]> = {
  // The image each container runs -> the command files that image may run.
  'tasklane-api': ['dist/api/server.js', 'dist/core/db/migrate-command.js'],
  'tasklane-worker': ['dist/worker/main.js'],
}

type Container = {
  name: string
  image: string
  args?: string[]
  command?: string[]
  ports?: { name?: string, containerPort: number }[]
  env?: { name: string, value?: string }[]
  envFrom?: { configMapRef?: { name: string }, secretRef?: { name: string } }[]
  livenessProbe?: { httpGet?: { path: string, port: string | number } }
  readinessProbe?: { httpGet?: { path: string, port: string | number } }
  resources?: { requests?: Record<string, string>, limits?: Record<string, string> }
  securityContext?: Record<string, any>
}
type PodSpec = { containers: Container[], securityContext?: Record<string, any>, terminationGracePeriodSeconds?: number, serviceAccountName?: string, automountServiceAccountToken?: boolean }

const podSpecOf = (o: K8sObject): PodSpec => o.spec.template.spec
const imageRepo = (image: string): string => image.split('@')[0]!.replace(/:[^/:]+$/, '').split('/').at(-1)!
const imageTag = (image: string): string => /:([^/:@]+)(@|$)/.exec(image)?.[1] ?? ''

t.test('the overlays exist and include dev and prod', async (t) => {
  t.ok(OVERLAYS.includes('dev') && OVERLAYS.includes('prod'), `overlays: ${OVERLAYS.join(', ')}`)
})

for (const overlay of OVERLAYS) {
  const objects = rendered.get(overlay)!

  t.test(`${overlay}: every object is valid against its Kubernetes schema`, async (t) => {
    t.ok(objects.length > 10, `${objects.length} objects rendered`)
    for (const obj of objects) {
      t.doesNotThrow(() => validateObject(obj), `${obj.apiVersion} ${obj.kind} ${obj.metadata.name}`)
    }
    const kinds = new Set(objects.map((o) => o.kind))
    for (const kind of ['Namespace', 'ConfigMap', 'ServiceAccount', 'Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'Job', 'NetworkPolicy', 'ServiceMonitor', 'PodMonitor']) {
      t.ok(kinds.has(kind), `has a ${kind}`)
    }
    for (const obj of objects.filter((o) => o.kind !== 'Namespace')) {
      t.equal(obj.metadata.namespace, 'tasklane', `${obj.kind} ${obj.metadata.name} is in the tasklane namespace`)
    }
    // The schema check must be able to fail, or passing it means nothing.
    t.throws(() => validateObject({ ...named(objects, 'Deployment', 'tasklane-api')!, spec: { replicas: 'two' } }), 'a broken Deployment is rejected')
    t.throws(() => validateObject({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'x' }, spec: { scaleTargetRef: { name: 'w' }, triggers: [], minReplicaCount: 'zero' } }), 'a broken ScaledObject is rejected')
  })

  t.test(`${overlay}: every workload has both probes, resources and a locked-down security context`, async (t) => {
    const config = byKind(objects, 'ConfigMap').find((c) => c.metadata.name === 'tasklane-config')!
    const graceMs = loadConfig(config.data).TASKLANE_SHUTDOWN_GRACE_MS
    const workloads = [...byKind(objects, 'Deployment'), ...byKind(objects, 'Job')]
    t.ok(byKind(objects, 'Deployment').length >= 3, 'an API Deployment and a worker Deployment per queue group')
    for (const workload of workloads) {
      const id = `${workload.kind} ${workload.metadata.name}`
      const pod = podSpecOf(workload)
      t.equal(pod.serviceAccountName, 'tasklane', `${id}: runs as the tasklane ServiceAccount`)
      t.equal(pod.automountServiceAccountToken, false, `${id}: no API token mounted`)
      t.equal(pod.securityContext?.runAsNonRoot, true, `${id}: pod runAsNonRoot`)
      t.ok(pod.securityContext?.runAsUser > 0, `${id}: pod runs as a non-zero uid`)
      t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${id}: seccomp RuntimeDefault`)
      if (workload.kind === 'Deployment') {
        // close-with-grace waits the drain grace plus 5 s; SIGKILL must come after that.
        t.ok((pod.terminationGracePeriodSeconds ?? 30) * 1000 > graceMs + 5000, `${id}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} s is above the ${graceMs} ms shutdown grace`)
      }
      for (const c of pod.containers) {
        const cid = `${id}/${c.name}`
        if (workload.kind === 'Deployment') {
          const portNames = new Set((c.ports ?? []).map((p) => p.name))
          t.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${cid}: liveness on /healthz`)
          t.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${cid}: readiness on /readyz`)
          t.ok(portNames.has(String(c.livenessProbe?.httpGet?.port)) && portNames.has(String(c.readinessProbe?.httpGet?.port)), `${cid}: probes use a declared port`)
        }
        t.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${cid}: cpu and memory requests`)
        t.ok(c.resources?.limits?.memory, `${cid}: a memory limit`)
        const sc = c.securityContext ?? {}
        t.equal(sc.allowPrivilegeEscalation, false, `${cid}: no privilege escalation`)
        t.equal(sc.readOnlyRootFilesystem, true, `${cid}: read-only root filesystem`)
        t.equal(sc.runAsNonRoot, true, `${cid}: runAsNonRoot`)
        t.same(sc.capabilities?.drop, ['ALL'], `${cid}: every capability dropped`)
        t.notOk(sc.privileged, `${cid}: not privileged`)
      }
    }
  })

  t.test(`${overlay}: containers run files that exist in the image they name, on the ports the process listens on`, async (t) => {
    const config = byKind(objects, 'ConfigMap').find((c) => c.metadata.name === 'tasklane-config')!
    const apiCmd = execForm(findLast(parseDockerfile(join(ROOT, 'Dockerfile.api')).stages.at(-1)!, 'CMD')!.args)
    const workerCmd = execForm(findLast(parseDockerfile(join(ROOT, 'Dockerfile.worker')).stages.at(-1)!, 'CMD')!.args)
    for (const workload of [...byKind(objects, 'Deployment'), ...byKind(objects, 'Job')]) {
      for (const c of podSpecOf(workload).containers) {
        const cid = `${workload.metadata.name}/${c.name}`
        t.notOk(c.command, `${cid}: keeps the image entrypoint (tini)`)
        const [node, file] = c.args ?? []
        t.equal(node, 'node', `${cid}: runs node`)
        t.ok(existsSync(join(ROOT, sourceOf(file!))), `${cid}: ${file} is built from ${sourceOf(file!)}, which exists`)
        t.ok(IMAGE_ENTRY[imageRepo(c.image)]?.includes(file!), `${cid}: ${file} is run from the ${imageRepo(c.image)} image`)
        t.ok(imageTag(c.image), `${cid}: image ${c.image} has a tag`)
        t.same(c.envFrom, [{ configMapRef: { name: 'tasklane-config' } }, { secretRef: { name: 'tasklane-secrets' } }], `${cid}: config and secrets from the shared objects`)
        const ports = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]))
        if (file === apiCmd?.[1]) t.same(ports, { http: Number(config.data!.PORT), metrics: Number(config.data!.METRICS_PORT) }, `${cid}: PORT and METRICS_PORT`)
        if (file === workerCmd?.[1]) t.same(ports, { metrics: Number(config.data!.METRICS_PORT) }, `${cid}: METRICS_PORT`)
      }
    }
  })

  t.test(`${overlay}: worker groups cover every queue, and the config loads as the services read it`, async (t) => {
    const workers = byKind(objects, 'Deployment').filter((d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'worker')
    const consumed: string[] = []
    for (const worker of workers) {
      const env = Object.fromEntries((podSpecOf(worker).containers[0]!.env ?? []).map((e) => [e.name, e.value ?? '']))
      const config = loadConfig({ ...byKind(objects, 'ConfigMap')[0]!.data, ...env })
      t.ok(config.queues.length > 0, `${worker.metadata.name}: TASKLANE_QUEUES names its queues`)
      for (const q of config.queues) {
        t.ok(KNOWN_QUEUES.includes(q.name), `${worker.metadata.name}: ${q.name} is a known queue`)
        t.ok(q.concurrency > 0, `${worker.metadata.name}: ${q.name} has an explicit concurrency (the autoscaling target)`)
        consumed.push(q.name)
      }
    }
    t.same([...consumed].sort(), KNOWN_QUEUES, 'every queue has exactly one worker group')
    const secret = named(objects, 'Secret', 'tasklane-secrets')
    if (secret) {
      const config = loadConfig({ ...byKind(objects, 'ConfigMap')[0]!.data, ...secret.stringData })
      t.ok(config.DATABASE_URL && config.apiKeys.length > 0, 'the Secret template holds values the services accept')
    } else {
      t.equal(overlay, 'prod', 'only prod leaves tasklane-secrets to be created out of band')
    }
  })

  t.test(`${overlay}: Services, monitors, PDBs and the CPU HPA select the pods they are meant for`, async (t) => {
    const api = named(objects, 'Deployment', 'tasklane-api')!
    const apiLabels = api.spec.template.metadata.labels
    const service = named(objects, 'Service', 'tasklane-api')!
    t.ok(selects(service.spec.selector, apiLabels), 'the API Service selects the API pods')
    const apiPortNames = podSpecOf(api).containers[0]!.ports!.map((p) => p.name)
    for (const port of service.spec.ports) t.ok(apiPortNames.includes(port.targetPort), `Service port ${port.name} targets a declared container port`)
    const monitor = byKind(objects, 'ServiceMonitor')[0]!
    t.ok(selects(monitor.spec.selector.matchLabels, service.metadata.labels), 'the ServiceMonitor selects the API Service')
    t.ok(monitor.spec.endpoints.every((e: { port: string }) => service.spec.ports.some((p: { name: string }) => p.name === e.port) && e.port === 'metrics'), 'it scrapes the metrics port')
    const podMonitor = byKind(objects, 'PodMonitor')[0]!
    const workers = byKind(objects, 'Deployment').filter((d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'worker')
    for (const worker of workers) {
      t.ok(selects(podMonitor.spec.selector.matchLabels, worker.spec.template.metadata.labels), `the PodMonitor selects ${worker.metadata.name}`)
      t.ok(podSpecOf(worker).containers[0]!.ports!.some((p) => p.name === podMonitor.spec.podMetricsEndpoints[0].port), `${worker.metadata.name} declares the scraped port`)
    }
    for (const deployment of byKind(objects, 'Deployment')) {
      const pdbs = byKind(objects, 'PodDisruptionBudget').filter((p) => selects(p.spec.selector.matchLabels, deployment.spec.template.metadata.labels))
      t.equal(pdbs.length, 1, `${deployment.metadata.name} has one PodDisruptionBudget`)
    }
    const apiHpa = named(objects, 'HorizontalPodAutoscaler', 'tasklane-api')!
    t.same(apiHpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'tasklane-api' }, 'the API HPA targets the API')
    t.equal(apiHpa.spec.metrics[0].resource.name, 'cpu', 'the API scales on CPU')
    t.ok(apiHpa.spec.minReplicas <= apiHpa.spec.maxReplicas, 'min <= max')
    t.ok(apiHpa.spec.behavior?.scaleDown?.stabilizationWindowSeconds >= 60, 'API scale-down is stabilised')
  })

  t.test(`${overlay}: the migration Job runs once per release`, async (t) => {
    const jobs = byKind(objects, 'Job')
    t.equal(jobs.length, 1, 'one migration Job')
    const job = jobs[0]!
    const tag = imageTag(podSpecOf(job).containers[0]!.image)
    t.equal(job.metadata.name, `tasklane-migrate-${tag}`, 'named after the release\'s image tag, so each release runs it once')
    t.equal(podSpecOf(job).containers[0]!.image, podSpecOf(named(objects, 'Deployment', 'tasklane-api')!).containers[0]!.image, 'the same image as the API it prepares')
    t.equal(job.spec.template.spec.restartPolicy, 'Never')
    t.ok(job.spec.backoffLimit >= 1 && job.spec.activeDeadlineSeconds > 0 && job.spec.ttlSecondsAfterFinished > 0, 'bounded retries and time, cleaned up after')
  })

  t.test(`${overlay}: network policies deny by default and open what the processes need`, async (t) => {
    const policies = byKind(objects, 'NetworkPolicy')
    const deny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0 && !p.spec.ingress && !p.spec.egress)
    t.same(deny?.spec.policyTypes, ['Ingress', 'Egress'], 'a default deny for ingress and egress')
    const config = byKind(objects, 'ConfigMap')[0]!.data!
    const opens = (labels: Record<string, string>, direction: 'ingress' | 'egress', port: number) => policies.some((p) =>
      (Object.keys(p.spec.podSelector).length === 0 || selects(p.spec.podSelector.matchLabels, labels)) &&
      (p.spec[direction] ?? []).some((rule: { ports?: { port: number }[] }) => rule.ports?.some((r) => r.port === port)))
    const apiLabels = named(objects, 'Deployment', 'tasklane-api')!.spec.template.metadata.labels
    t.ok(opens(apiLabels, 'ingress', Number(config.PORT)), 'API public port open')
    for (const deployment of byKind(objects, 'Deployment')) {
      const labels = deployment.spec.template.metadata.labels
      t.ok(opens(labels, 'ingress', Number(config.METRICS_PORT)), `${deployment.metadata.name}: metrics port open to Prometheus`)
      for (const port of [53, 5432, 6379]) t.ok(opens(labels, 'egress', port), `${deployment.metadata.name}: egress to port ${port}`)
    }
  })
}

t.test('the base holds a Secret template and prod does not ship it', async (t) => {
  t.ok(named(rendered.get('dev')!, 'Secret', 'tasklane-secrets'), 'dev renders its Secret')
  t.notOk(named(rendered.get('prod')!, 'Secret', 'tasklane-secrets'), 'prod expects it from outside')
})

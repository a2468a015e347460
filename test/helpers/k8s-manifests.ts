import { execFileSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { kedaSh } from '@kubernetes-models/keda'
import * as monitoringV1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'
import * as appsV1 from 'kubernetes-models/apps/v1'
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2'
import * as batchV1 from 'kubernetes-models/batch/v1'
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1'
import * as policyV1 from 'kubernetes-models/policy/v1'
import * as coreV1 from 'kubernetes-models/v1'
import { parseAllDocuments } from 'yaml'

export const ROOT = new URL('../..', import.meta.url).pathname

export type K8sObject = {
  apiVersion: string
  kind: string
  metadata: { name: string, namespace?: string, labels?: Record<string, string> }
  // Read only after validateObject has checked it against the schema.
  spec?: any
  data?: Record<string, string>
  stringData?: Record<string, string>
}

/** The overlays a user can apply: every directory under k8s/overlays. */
export const overlays = (): string[] => readdirSync(join(ROOT, 'k8s/overlays')).sort()

/** `kubectl kustomize k8s/overlays/<name>`, as `make k8s` and a user would run it. */
export function render (overlay: string): K8sObject[] {
  const out = execFileSync('kubectl', ['kustomize', join(ROOT, 'k8s/overlays', overlay)], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })
  return parseAllDocuments(out).map((doc) => doc.toJS() as K8sObject).filter(Boolean)
}

type Model = new (data: unknown) => { validate: () => void }
const MODELS: Record<string, Record<string, unknown>> = {
  v1: coreV1,
  'apps/v1': appsV1,
  'autoscaling/v2': autoscalingV2,
  'batch/v1': batchV1,
  'policy/v1': policyV1,
  'networking.k8s.io/v1': networkingV1,
  'monitoring.coreos.com/v1': monitoringV1,
  'keda.sh/v1alpha1': kedaSh.v1alpha1,
}

/**
 * Validates an object against its Kubernetes (or CRD) JSON schema from the kubernetes-models
 * packages; throws with the schema's complaint. An apiVersion/kind without a model is an
 * error too, so a new kind cannot slip in unchecked.
 */
export function validateObject (obj: K8sObject): void {
  const Kind = MODELS[obj.apiVersion]?.[obj.kind] as Model | undefined
  if (!Kind) throw new Error(`no schema model for ${obj.apiVersion} ${obj.kind}`)
  new Kind(obj).validate()
}

export const byKind = (objects: K8sObject[], kind: string): K8sObject[] => objects.filter((o) => o.kind === kind)

export const named = (objects: K8sObject[], kind: string, name: string): K8sObject | undefined =>
  objects.find((o) => o.kind === kind && o.metadata.name === name)

/** `matchLabels` ⊆ labels. */
export const selects = (matchLabels: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  !!matchLabels && Object.keys(matchLabels).length > 0 && Object.entries(matchLabels).every(([k, v]) => labels?.[k] === v)

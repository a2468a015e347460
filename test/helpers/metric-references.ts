import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { parseAllDocuments } from 'yaml'

const KEYWORDS = new Set([
  'and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset',
  'start', 'end', 'inf', 'nan', 'atan2',
])

/**
 * The metric names a PromQL expression reads. Not a full parser: it drops what cannot be a
 * metric name (strings, label matchers, ranges, grouping label lists, Grafana variables and
 * prometheus-adapter templates), then keeps every identifier that is not a function call or
 * keyword.
 */
export function metricNamesInPromQL (expr: string): string[] {
  let text = expr
    .replace(/<<[^>]*>>/g, ' ')
    .replace(/\$\{[^}]*\}|\$__\w+|\$\w+/g, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
  text = text.replace(/\{[^{}]*\}/g, ' ').replace(/\[[^\]]*\]/g, ' ')
  text = text.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const names = new Set<string>()
  for (const match of text.matchAll(/(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = text.slice(match.index + match[0].length)
    if (/^\s*\(/.test(rest) || KEYWORDS.has(match[0].toLowerCase())) continue
    names.add(match[0])
  }
  return [...names]
}

export type Reference = { name: string, file: string }

const PROMQL_KEYS = new Set(['expr', 'query', 'seriesQuery', 'metricsQuery'])

/** Walks parsed YAML/JSON: PromQL under expression keys, HPA external metric names, embedded YAML. */
function walk (node: unknown, file: string, out: Reference[], parentKey = '', grandKey = ''): void {
  if (Array.isArray(node)) {
    for (const item of node) walk(item, file, out, parentKey, grandKey)
    return
  }
  if (node && typeof node === 'object') {
    const obj = node as Record<string, unknown>
    // A Grafana data source variable: its query is a plugin type, not PromQL.
    if (obj.type === 'datasource') return
    for (const [key, value] of Object.entries(obj)) {
      if (typeof value === 'string') {
        const labelValues = /^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(value)
        if (labelValues) {
          // A Grafana template variable: label_values(metric, label)
          out.push({ name: labelValues[1]!, file })
        } else if (PROMQL_KEYS.has(key)) {
          for (const name of metricNamesInPromQL(value)) out.push({ name, file })
        } else if (key === 'name' && parentKey === 'metric' && grandKey === 'external') {
          out.push({ name: value, file })
        } else if (value.includes('\n') && /seriesQuery|expr:|query:/.test(value)) {
          for (const doc of parseAllDocuments(value)) walk(doc.toJS(), file, out)
        }
      } else {
        walk(value, file, out, key, parentKey)
      }
    }
  }
}

function filesUnder (dir: string, suffixes: string[]): string[] {
  let entries: string[]
  try {
    entries = readdirSync(dir)
  } catch {
    return []
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry)
    if (statSync(path).isDirectory()) return filesUnder(path, suffixes)
    return suffixes.some((s) => entry.endsWith(s)) ? [path] : []
  })
}

/**
 * Every metric name read by the Prometheus rules, the Grafana dashboards and the Kubernetes
 * manifests (autoscalers, adapter rules, PrometheusRules), plus the series the rules record.
 */
export function collectMetricReferences (root: string): { references: Reference[], recorded: Set<string>, files: string[] } {
  const references: Reference[] = []
  const recorded = new Set<string>()
  const yamlFiles = [
    ...filesUnder(join(root, 'deploy/prometheus/rules'), ['.yml', '.yaml']),
    ...filesUnder(join(root, 'k8s'), ['.yml', '.yaml']),
  ]
  for (const path of yamlFiles) {
    const file = relative(root, path)
    for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
      const data = doc.toJS() as { groups?: { rules?: { record?: string }[] }[], spec?: { groups?: { rules?: { record?: string }[] }[] } } | null
      for (const group of [...(data?.groups ?? []), ...(data?.spec?.groups ?? [])]) {
        for (const rule of group.rules ?? []) if (rule.record) recorded.add(rule.record)
      }
      walk(data, file, references)
    }
  }
  const dashboards = filesUnder(join(root, 'deploy/grafana/dashboards'), ['.json'])
  for (const path of dashboards) walk(JSON.parse(readFileSync(path, 'utf8')), relative(root, path), references)
  return { references, recorded, files: [...yamlFiles, ...dashboards].map((p) => relative(root, p)) }
}

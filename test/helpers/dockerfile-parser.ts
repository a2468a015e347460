import { readFileSync } from 'node:fs'

export type Instruction = { keyword: string, args: string, line: number }
export type Stage = { name: string, from: string, instructions: Instruction[], text: string }
export type Dockerfile = { args: Record<string, string>, stages: Stage[] }

/**
 * Enough of the Dockerfile grammar to lint our two files without a Docker engine: comments,
 * parser directives, backslash continuations, global ARGs and named stages. `text` is a
 * stage's source from its FROM line to the next, for comparing stages across files.
 */
export function parseDockerfile (path: string): Dockerfile {
  const lines = readFileSync(path, 'utf8').split('\n')
  const args: Record<string, string> = {}
  const stages: Stage[] = []
  let pending = ''
  let startLine = 0
  let stageLines: string[] = []
  for (const [i, raw] of lines.entries()) {
    if (stages.length > 0) stageLines.push(raw)
    const trimmed = raw.trim()
    if (pending === '' && (trimmed === '' || trimmed.startsWith('#'))) continue
    if (pending !== '' && trimmed.startsWith('#')) continue
    if (pending === '') startLine = i + 1
    if (trimmed.endsWith('\\')) { pending += trimmed.slice(0, -1) + ' '; continue }
    const full = (pending + trimmed).trim()
    pending = ''
    const match = /^(\S+)\s*(.*)$/s.exec(full)!
    const instruction = { keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: startLine }
    if (instruction.keyword === 'FROM') {
      if (stages.length > 0) stages.at(-1)!.text = stageText(stageLines.slice(0, -1))
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args)
      if (!from) throw new Error(`${path}:${startLine}: cannot read FROM ${instruction.args}`)
      stages.push({ name: from[2] ?? String(stages.length), from: from[1]!, instructions: [], text: '' })
      stageLines = [raw]
      continue
    }
    if (stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [name, value = ''] = instruction.args.split('=')
        args[name!] = value
      }
      continue
    }
    stages.at(-1)!.instructions.push(instruction)
  }
  if (stages.length > 0) stages.at(-1)!.text = stageText(stageLines)
  return { args, stages }
}

// Comments after a stage's last instruction introduce the next stage: they are not its text.
function stageText (lines: string[]): string {
  const kept = [...lines]
  while (kept.length > 0 && /^\s*(#.*)?$/.test(kept.at(-1)!)) kept.pop()
  return kept.join('\n')
}

/** The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK CMD; undefined for the shell form. */
export function execForm (args: string): string[] | undefined {
  const json = args.replace(/^CMD\s+/i, '')
  if (!json.startsWith('[')) return undefined
  return JSON.parse(json) as string[]
}

export function findAll (stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword)
}

export function findLast (stage: Stage, keyword: string): Instruction | undefined {
  return findAll(stage, keyword).at(-1)
}

/** Ports a stage EXPOSEs, including what it inherits from the stages it is built FROM. */
export function exposedPorts (file: Dockerfile, stageName: string): number[] {
  const stage = file.stages.find((s) => s.name === stageName)
  if (!stage) return []
  const own = findAll(stage, 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map((p) => Number(p.split('/')[0])))
  return [...exposedPorts(file, stage.from), ...own]
}

/** ENV values a stage sets (both `ENV A=1 B=2` and `ENV A 1`), inherited ones first. */
export function stageEnv (file: Dockerfile, stageName: string): Record<string, string> {
  const stage = file.stages.find((s) => s.name === stageName)
  if (!stage) return {}
  const env: Record<string, string> = { ...stageEnv(file, stage.from) }
  for (const { args } of findAll(stage, 'ENV')) {
    if (!args.includes('=')) {
      const [name, ...rest] = args.split(/\s+/)
      env[name!] = rest.join(' ')
      continue
    }
    for (const pair of args.match(/\S+=("[^"]*"|\S*)/g) ?? []) {
      const at = pair.indexOf('=')
      env[pair.slice(0, at)] = pair.slice(at + 1).replace(/^"|"$/g, '')
    }
  }
  return env
}

import { readFileSync } from 'node:fs'
import { join, relative } from 'node:path'

const ROOT = new URL('../..', import.meta.url).pathname

/**
 * The source file a path under the build's output was compiled from (dist/api/server.js ->
 * services/api/server.ts), by tsconfig.build.json's rootDir and outDir, so a command that names
 * built JavaScript can be checked against the sources without building. Anything else maps to itself.
 */
export function sourceOf (path: string): string {
  // The build config carries // comments, which JSON.parse does not accept.
  const text = readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8').replace(/^\s*\/\/.*$/gm, '')
  const { rootDir, outDir } = (JSON.parse(text) as { compilerOptions: { rootDir: string, outDir: string } }).compilerOptions
  const inOut = relative(outDir, path)
  if (inOut.startsWith('..') || !path.endsWith('.js')) return path
  return join(rootDir, inOut.replace(/\.js$/, '.ts'))
}

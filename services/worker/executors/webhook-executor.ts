import type { Job } from 'bullmq'
import { callbackUrl, newCallbackToken } from '../../core/callbacks/callback-token.ts'
import type { OutboundClient } from '../../core/outbound/outbound-client.ts'
import { OutboundError } from '../../core/outbound/outbound-error.ts'
import { USER_AGENT } from '../../core/outbound/user-agent.ts'
import { outcomeOfError, type WebhookMetrics } from '../../core/outbound/webhook-metrics.ts'
import { signedHeaders } from '../../core/outbound/webhook-signer.ts'
import type { RegisteredType } from '../../core/task-types/registered-type.ts'
import type { TaskTypeCatalog } from '../../core/task-types/task-type-catalog.ts'
import type { Secrets } from '../../core/task-types/task-type-repository.ts'
import type { TaskTransitions } from '../../core/tasks/transitions.ts'
import { CONTINUES_ELSEWHERE, PermanentTaskError, RetryableTaskError, type TaskContext, type TaskHandler } from '../task-handler.ts'
import { readAnswer } from './webhook-answer.ts'

const DEFAULT_TIMEOUT_MS = 30_000

/**
 * Runs the tasks of a tenant's webhook types: one signed POST per attempt (Standard Webhooks,
 * `webhook-id: <taskId>.<attempt>`, both signatures while a rotation is under way) through
 * the process's one outbound client, and the answer read as webhook-answer.ts says. Before
 * the POST, the attempt's callback window opens (a lease fenced like a pull worker's), so a
 * receiver that answers 202 can complete it later, or the deadline ends it as a TIMEOUT.
 */
export function createWebhookExecutors (deps: {
  catalog: Pick<TaskTypeCatalog, 'registered' | 'validateResult'>
  transitions: Pick<TaskTransitions, 'openCallbackLease' | 'closeLease'>
  secrets: (tenant: string, name: string) => Promise<Secrets | undefined>
  outbound: OutboundClient
  metrics: WebhookMetrics
  /** TASKLANE_PUBLIC_URL; empty: the body's `callback` is null. */
  publicUrl: string
  maxResultBytes: number
}) {
  // A rotation changes the type's updatedAt, which every process's catalog hears within
  // milliseconds: the secrets read for one version of the type serve until it changes.
  const secretCache = new Map<string, { updatedAt: number, secrets: Secrets | undefined }>()

  async function signingSecrets (tenant: string, type: RegisteredType): Promise<string[]> {
    const key = `${tenant}\u0000${type.name}`
    let cached = secretCache.get(key)
    const expired = cached?.secrets?.previousExpiresAt != null && cached.secrets.previousExpiresAt.getTime() <= Date.now()
    if (!cached || cached.updatedAt !== type.updatedAt.getTime() || expired) {
      cached = { updatedAt: type.updatedAt.getTime(), secrets: await deps.secrets(tenant, type.name) }
      secretCache.set(key, cached)
    }
    const list = [cached.secrets?.current, cached.secrets?.previous].filter((s): s is string => typeof s === 'string')
    if (list.length === 0) throw new PermanentTaskError(`task type ${type.name} has no signing secret`, 'WEBHOOK_REJECTED')
    return list
  }

  /** The attempt's lease; undefined when the task moved on (a cancel, another worker's claim), after which nothing records. */
  async function openLease (ctx: TaskContext, tokenHash: string | null): Promise<{ leaseId: string, deadline: Date }> {
    const lease = await deps.transitions.openCallbackLease(ctx.taskId, ctx.attempt, tokenHash)
    if (!lease) throw new Error('the task is no longer on this attempt')
    return lease
  }

  async function run (tenant: string, type: RegisteredType & { executor: { kind: 'webhook' } }, ctx: TaskContext): Promise<unknown> {
    // With callbacks on offer the lease opens before the POST (a receiver may call back before
    // it answers); without, only a 202 needs one, for the deadline to end the attempt.
    const token = deps.publicUrl === '' ? undefined : newCallbackToken()
    let lease = token ? await openLease(ctx, token.hash) : undefined
    let open = false
    try {
      const body = JSON.stringify({
        task: {
          id: ctx.taskId, type: type.name, attempt: ctx.attempt, maxAttempts: ctx.maxAttempts, payload: ctx.payload,
          deadline: ctx.deadline.toISOString(),
          ...(Object.keys(ctx.dependencies).length > 0 ? { dependencies: ctx.dependencies } : {}),
        },
        callback: token ? { url: callbackUrl(deps.publicUrl, token.token), token: token.token } : null,
      })
      const headers = {
        'content-type': 'application/json',
        'user-agent': USER_AGENT,
        'idempotency-key': ctx.taskId,
        ...signedHeaders(await signingSecrets(tenant, type), `${ctx.taskId}.${ctx.attempt}`, body),
      }
      const url = new URL(type.executor.url)
      const remainingMs = ctx.deadline.getTime() - Date.now()
      const started = performance.now()
      let response
      try {
        response = await deps.outbound.send({
          method: 'POST', url: url.href, headers, body, signal: ctx.signal,
          timeoutMs: Math.max(1, Math.min(type.executor.timeoutMs ?? DEFAULT_TIMEOUT_MS, remainingMs)),
          bodyCapBytes: deps.maxResultBytes + 1,
        })
      } catch (err) {
        if (ctx.signal.aborted) throw err
        deps.metrics.observe('executor', outcomeOfError(err), (performance.now() - started) / 1000)
        if (!(err instanceof OutboundError)) throw err
        throw err.retryable ? new RetryableTaskError(err.message, err.code) : new PermanentTaskError(err.message, err.code)
      }
      const answer = readAnswer(url.host, response)
      deps.metrics.observe('executor', answer.outcome, (performance.now() - started) / 1000)
      if (answer.kind === 'accepted') {
        lease ??= await openLease(ctx, null)
        open = true
        return CONTINUES_ELSEWHERE
      }
      if (answer.kind === 'error') throw answer.error
      const problems = deps.catalog.validateResult(tenant, type.name, answer.value)
      if (problems.length > 0) {
        const detail = problems.slice(0, 5).map((p) => `${p.path} ${p.message}`).join('; ')
        throw new PermanentTaskError(`the result does not match the type's resultSchema: ${detail}`, 'RESULT_INVALID')
      }
      return answer.value
    } finally {
      // Answered (or given up on) here: no callback may record anything for this attempt now.
      if (lease && !open) await deps.transitions.closeLease(lease.leaseId)
    }
  }

  return {
    /** The executor of a job of a registered webhook type (its queue is `<tenant>/<queue>`); undefined for any other job. */
    executorFor (job: Job): TaskHandler | undefined {
      const slash = job.queueName.indexOf('/')
      if (slash < 0) return undefined
      const tenant = job.queueName.slice(0, slash)
      const type = deps.catalog.registered(tenant, job.name)
      if (type?.executor.kind !== 'webhook') return undefined
      const webhookType = type as RegisteredType & { executor: { kind: 'webhook' } }
      return (ctx) => run(tenant, webhookType, ctx)
    },
  }
}

export type WebhookExecutors = ReturnType<typeof createWebhookExecutors>

// The notifications a terminal transition owes are inserted by the transition's own
// statement, as one more CTE over the rows it just ended: the state change and the outbox rows
// commit together or not at all, so no crash can leave an ended task without the
// notifications it owes. For a tenant without endpoints the join finds nothing (one probe of
// the endpoints' tenant index) and nothing is written.

export const NOTIFY_EVENTS = ['task.completed', 'task.failed', 'task.cancelled'] as const
export type NotifyEvent = typeof NOTIFY_EVENTS[number]

// An endpoint's tags match a task carrying any one of them (array overlap).
const TAGS_MATCH = '(e.tags is null or e.tags && s.tags)'

/**
 * A CTE named `owed` inserting the outbox rows for the ended tasks in `source` (a CTE or
 * table alias with id, tenant, type, status and tags), optionally narrowed by `where` over `s`.
 */
export const owedNotificationsCte = (source: string, where = 'true'): string => `
  owed as (
    insert into notification_outbox (id, tenant, task_id, endpoint_id, event)
    select gen_random_uuid(), e.tenant, s.id, e.id, 'task.' || s.status
    from ${source} s join webhook_endpoints e on e.tenant = s.tenant
    where s.status in ('completed', 'failed', 'cancelled') and (${where})
      and ('task.' || s.status) = any(e.events)
      and (e.types is null or s.type = any(e.types))
      and ${TAGS_MATCH}
  )`

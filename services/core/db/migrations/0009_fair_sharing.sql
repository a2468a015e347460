ALTER TABLE "tasks" ADD COLUMN "held" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "tenant_limits" ADD COLUMN "concurrency" jsonb;--> statement-breakpoint
ALTER TABLE "tenant_limits" ADD COLUMN "create_per_minute" integer;--> statement-breakpoint
CREATE INDEX "tasks_held_idx" ON "tasks" USING btree ("queue","tenant",(case "priority" when 'critical' then 0 when 'high' then 1 when 'normal' then 2 else 3 end),"id") WHERE held and status = 'queued';--> statement-breakpoint
CREATE INDEX "tasks_dispatched_idx" ON "tasks" USING btree ("queue","tenant") WHERE not held and blocked_count = 0 and status in ('queued', 'running');--> statement-breakpoint
ALTER TABLE "tenant_limits" ADD CONSTRAINT "tenant_limits_create_per_minute_check" CHECK ("tenant_limits"."create_per_minute" is null or "tenant_limits"."create_per_minute" between 1 and 1000000);
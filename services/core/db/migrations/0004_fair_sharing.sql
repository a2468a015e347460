CREATE TABLE "tenant_limits" (
	"tenant" text PRIMARY KEY NOT NULL,
	"concurrency" jsonb,
	"create_per_minute" integer,
	"retention_days" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "held" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX "tasks_held_idx" ON "tasks" USING btree ("queue","tenant",(case "priority" when 'critical' then 0 when 'high' then 1 when 'normal' then 2 else 3 end),"id") WHERE held and status = 'queued';--> statement-breakpoint
CREATE INDEX "tasks_dispatched_idx" ON "tasks" USING btree ("queue","tenant") WHERE not held and status in ('queued', 'running');
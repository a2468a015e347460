CREATE TABLE "task_attempts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"task_id" uuid NOT NULL,
	"attempt" smallint NOT NULL,
	"worker_id" text NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"finished_at" timestamp with time zone,
	"outcome" text NOT NULL,
	"error" jsonb,
	"duration_ms" integer
);
--> statement-breakpoint
CREATE TABLE "tasks" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant" text DEFAULT 'default' NOT NULL,
	"type" text NOT NULL,
	"queue" text NOT NULL,
	"status" text NOT NULL,
	"priority" text NOT NULL,
	"payload" jsonb NOT NULL,
	"result" jsonb,
	"error" jsonb,
	"progress" jsonb,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer NOT NULL,
	"backoff" jsonb NOT NULL,
	"timeout_ms" integer NOT NULL,
	"run_at" timestamp with time zone NOT NULL,
	"idempotency_key" text,
	"request_hash" text,
	"worker_id" text,
	"cancel_requested_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "task_attempts" ADD CONSTRAINT "task_attempts_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "task_attempts_task_attempt_idx" ON "task_attempts" USING btree ("task_id","attempt");--> statement-breakpoint
CREATE INDEX "tasks_tenant_id_idx" ON "tasks" USING btree ("tenant","id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "tasks_tenant_status_id_idx" ON "tasks" USING btree ("tenant","status","id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "tasks_tenant_type_id_idx" ON "tasks" USING btree ("tenant","type","id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "tasks_tenant_queue_id_idx" ON "tasks" USING btree ("tenant","queue","id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "tasks_unfinished_idx" ON "tasks" USING btree ("status","updated_at") WHERE status in ('queued', 'running');--> statement-breakpoint
CREATE UNIQUE INDEX "tasks_tenant_idempotency_key_idx" ON "tasks" USING btree ("tenant","idempotency_key") WHERE idempotency_key is not null;
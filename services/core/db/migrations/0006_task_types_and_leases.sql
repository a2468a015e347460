CREATE TABLE "task_leases" (
	"lease_id" uuid PRIMARY KEY NOT NULL,
	"task_id" uuid NOT NULL,
	"tenant" text NOT NULL,
	"attempt" integer NOT NULL,
	"worker_id" text NOT NULL,
	"visibility_ms" integer NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"deadline" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"ended_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "task_types" (
	"tenant" text NOT NULL,
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"queue" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"payload_schema" jsonb,
	"result_schema" jsonb,
	"defaults" jsonb NOT NULL,
	"concurrency" integer,
	"rate_limit" jsonb,
	"executor" jsonb NOT NULL,
	"signing_secret" text,
	"previous_signing_secret" text,
	"previous_secret_expires_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone,
	CONSTRAINT "task_types_tenant_name_pk" PRIMARY KEY("tenant","name")
);
--> statement-breakpoint
ALTER TABLE "task_attempts" DROP CONSTRAINT "task_attempts_outcome_check";--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "type_version" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "task_leases" ADD CONSTRAINT "task_leases_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "task_leases_open_idx" ON "task_leases" USING btree ("expires_at") WHERE ended_at is null;--> statement-breakpoint
CREATE INDEX "task_leases_task_idx" ON "task_leases" USING btree ("task_id");--> statement-breakpoint
ALTER TABLE "task_attempts" ADD CONSTRAINT "task_attempts_outcome_check" CHECK ("task_attempts"."outcome" in ('running', 'completed', 'failed', 'cancelled', 'lost', 'released', 'timed_out'));
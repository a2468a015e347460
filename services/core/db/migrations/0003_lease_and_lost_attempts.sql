ALTER TABLE "tasks" ADD COLUMN "lease_id" uuid;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "lost_attempts" integer DEFAULT 0 NOT NULL;
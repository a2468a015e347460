CREATE TABLE "task_counts" (
	"tenant" text NOT NULL,
	"type" text NOT NULL,
	"status" text NOT NULL,
	"slot" smallint NOT NULL,
	"count" bigint NOT NULL,
	CONSTRAINT "task_counts_tenant_type_status_slot_pk" PRIMARY KEY("tenant","type","status","slot")
);
--> statement-breakpoint
CREATE TABLE "tenant_limits" (
	"tenant" text PRIMARY KEY NOT NULL,
	"retention_days" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "tenant_limits_retention_days_check" CHECK ("tenant_limits"."retention_days" is null or "tenant_limits"."retention_days" between 1 and 36500)
);
--> statement-breakpoint
DROP INDEX "tasks_unfinished_idx";--> statement-breakpoint
CREATE INDEX "tasks_unfinished_idx" ON "tasks" USING btree ("status","id") WHERE status in ('queued', 'running');--> statement-breakpoint
ALTER TABLE "task_attempts" ADD CONSTRAINT "task_attempts_outcome_check" CHECK ("task_attempts"."outcome" in ('running', 'completed', 'failed', 'cancelled', 'lost', 'released'));--> statement-breakpoint
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_status_check" CHECK ("tasks"."status" in ('queued', 'running', 'completed', 'failed', 'cancelled'));--> statement-breakpoint
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_priority_check" CHECK ("tasks"."priority" in ('critical', 'high', 'normal', 'low'));--> statement-breakpoint
-- Hand-written below (drizzle-kit does not express triggers or storage parameters).
-- task_counts follows every insert, status change and delete of tasks, one upsert per
-- statement (statement triggers with transition tables), in key order so that two writers
-- never take counter row locks in opposite orders. A backend writes the slot of its pid.
CREATE FUNCTION "task_counts_apply"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO task_counts AS c (tenant, type, status, slot, count)
      SELECT n.tenant, n.type, n.status, (pg_backend_pid() % 16)::smallint, count(*)
      FROM new_rows n GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
      ON CONFLICT (tenant, type, status, slot) DO UPDATE SET count = c.count + excluded.count;
  ELSIF TG_OP = 'TRUNCATE' THEN
    DELETE FROM task_counts;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO task_counts AS c (tenant, type, status, slot, count)
      SELECT o.tenant, o.type, o.status, (pg_backend_pid() % 16)::smallint, -count(*)
      FROM old_rows o GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
      ON CONFLICT (tenant, type, status, slot) DO UPDATE SET count = c.count + excluded.count;
  ELSE
    INSERT INTO task_counts AS c (tenant, type, status, slot, count)
      SELECT d.tenant, d.type, d.status, (pg_backend_pid() % 16)::smallint, sum(d.delta)
      FROM (
        SELECT n.tenant, n.type, n.status, 1 AS delta FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE o.status <> n.status
        UNION ALL
        SELECT o.tenant, o.type, o.status, -1 FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE o.status <> n.status
      ) d
      GROUP BY 1, 2, 3 HAVING sum(d.delta) <> 0 ORDER BY 1, 2, 3
      ON CONFLICT (tenant, type, status, slot) DO UPDATE SET count = c.count + excluded.count;
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "task_counts_insert" AFTER INSERT ON "tasks" REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "task_counts_apply"();
--> statement-breakpoint
CREATE TRIGGER "task_counts_update" AFTER UPDATE ON "tasks" REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "task_counts_apply"();
--> statement-breakpoint
CREATE TRIGGER "task_counts_delete" AFTER DELETE ON "tasks" REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "task_counts_apply"();
--> statement-breakpoint
CREATE TRIGGER "task_counts_truncate" AFTER TRUNCATE ON "tasks"
  FOR EACH STATEMENT EXECUTE FUNCTION "task_counts_apply"();
--> statement-breakpoint
INSERT INTO "task_counts" (tenant, type, status, slot, count)
  SELECT tenant, type, status, 0, count(*) FROM "tasks" GROUP BY 1, 2, 3;
--> statement-breakpoint
-- Room on each page for the update that closes an attempt, so that it can be HOT.
ALTER TABLE "task_attempts" SET (fillfactor = 80);

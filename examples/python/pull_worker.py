#!/usr/bin/env python3
"""A Tasklane pull worker in Python, standard library only.

It registers the task type `word-count` (a pull type with a payload and a result schema),
then leases tasks of it, sends a heartbeat while working, and completes each with its result.

    TASKLANE_URL=http://localhost:3000 TASKLANE_API_KEY=... python3 pull_worker.py

Environment: TASKLANE_URL, TASKLANE_API_KEY, WORKER_ID (default: python-<pid>),
MAX_TASKS (stop after this many tasks; default: run until interrupted).
"""
import json
import os
import sys
import threading
import urllib.error
import urllib.request

URL = os.environ.get("TASKLANE_URL", "http://localhost:3000").rstrip("/")
API_KEY = os.environ["TASKLANE_API_KEY"]
WORKER_ID = os.environ.get("WORKER_ID", f"python-{os.getpid()}")
MAX_TASKS = int(os.environ.get("MAX_TASKS", "0"))
TYPE = "word-count"
VISIBILITY_MS = 30_000


class LeaseLost(Exception):
    """The lease expired or ended (409 lease-lost): another attempt owns the task now."""


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method, headers={
        "authorization": f"Bearer {API_KEY}",
        "content-type": "application/json",
    })
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        problem = json.loads(err.read().decode() or "{}")
        if err.code == 409 and problem.get("type", "").endswith("lease-lost"):
            raise LeaseLost(problem.get("detail")) from None
        raise RuntimeError(f"{method} {path}: {err.code} {problem.get('detail')}") from None


def register():
    call("PUT", f"/v1/task-types/{TYPE}", {
        "description": "Counts the words of a text",
        "payloadSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        "resultSchema": {
            "type": "object",
            "properties": {"words": {"type": "integer", "minimum": 0}},
            "required": ["words"],
        },
        "executor": {"kind": "pull"},
    })


def heartbeat_until(lease_id, done):
    """Extends the lease every third of its visibility until `done` is set; stops on a cancel."""
    while not done.wait(VISIBILITY_MS / 3000):
        try:
            reply = call("POST", f"/v1/leases/{lease_id}/heartbeat", {})
        except LeaseLost:
            return
        if reply["cancelRequested"]:
            print(f"task of lease {lease_id} was cancelled", file=sys.stderr)
            return


def work(lease):
    task = lease["task"]
    done = threading.Event()
    beating = threading.Thread(target=heartbeat_until, args=(lease["leaseId"], done), daemon=True)
    beating.start()
    try:
        call("POST", f"/v1/leases/{lease['leaseId']}/heartbeat", {"progress": 10})
        words = len(task["payload"]["text"].split())
        call("POST", f"/v1/leases/{lease['leaseId']}/complete", {"result": {"words": words}})
        print(json.dumps({"completed": task["id"], "words": words}), flush=True)
    except LeaseLost:
        print(f"lease of task {task['id']} was lost; another attempt has it", file=sys.stderr)
    except Exception as err:  # the handler failed: Tasklane retries by the task's policy
        try:
            call("POST", f"/v1/leases/{lease['leaseId']}/fail", {"error": {"message": str(err)}, "retryable": True})
        except LeaseLost:
            pass
    finally:
        done.set()


def main():
    register()
    print(json.dumps({"registered": TYPE}), flush=True)
    handled = 0
    while MAX_TASKS == 0 or handled < MAX_TASKS:
        leases = call("POST", "/v1/leases", {
            "types": [TYPE], "max": 10, "waitMs": 5_000, "visibilityMs": VISIBILITY_MS, "workerId": WORKER_ID,
        })["items"]
        for lease in leases:
            work(lease)
            handled += 1


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass

#!/usr/bin/env python3
"""The tasks of a Tasklane webhook executor type, received in Python, standard library only.

It verifies each request's Standard Webhooks signature, answers 202, and does the work in a
thread that calls back through the URL in the body: progress, then complete (or fail).

    TASKLANE_TASK_SECRET=whsec_... PORT=8080 python3 receiver.py

TASKLANE_TASK_SECRET is the type's signingSecret (both secrets, space-separated, during a
rotation). `verify` checks a notification the same way, with the endpoint's secret.
"""
import base64
import hashlib
import hmac
import json
import os
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRETS = os.environ["TASKLANE_TASK_SECRET"].split()


def verify(headers, body: bytes) -> bool:
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    signed = f"{msg_id}.{ts}.".encode() + body
    given = [s.split(",", 1)[-1] for s in headers.get("webhook-signature", "").split(" ")]
    for secret in SECRETS:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, g) for g in given):
            return True
    return False


def call_back(callback, action, body):
    """POST <callback.url>/<action>; the token in the URL is the only credential."""
    request = urllib.request.Request(f"{callback['url']}/{action}", data=json.dumps(body).encode(),
                                     method="POST", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        if err.code == 409:  # the attempt already ended (deadline, cancel): stop
            return {"cancelRequested": True}
        raise


def count_words(task):
    """The work of a task: its result, or ValueError when the payload has no text."""
    text = task["payload"].get("text")
    if not isinstance(text, str):
        raise ValueError("payload.text is not a string")
    return {"words": len(text.split())}


def run_later(task, callback):
    if call_back(callback, "progress", {"progress": 50}).get("cancelRequested"):
        return
    try:
        result = count_words(task)
    except ValueError as err:
        call_back(callback, "fail", {"error": {"message": str(err), "code": "NO_TEXT"}, "retryable": False})
        return
    call_back(callback, "complete", {"result": result})


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not verify(self.headers, body):
            self.answer(401)
            return
        request = json.loads(body)
        if request["callback"] is None:
            # Tasklane runs without TASKLANE_PUBLIC_URL: no callbacks, so the answer carries the result.
            try:
                self.answer(200, json.dumps(count_words(request["task"])).encode())
            except ValueError as err:
                self.answer(422, str(err).encode())
            return
        # Answer within the type's timeoutMs, work later.
        self.answer(202)
        threading.Thread(target=run_later, args=(request["task"], request["callback"])).start()

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("content-type", "application/json" if status == 200 else "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))), Handler)
print(json.dumps({"listening": server.server_address[1]}), flush=True)
server.serve_forever()

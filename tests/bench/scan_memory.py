#!/usr/bin/env python3
"""`scripts/bench`, scan-table part: peak RSS of `stream scan-table` over a 1,000,000-item table, in
each streaming format, and how much of the table `| head -n 1` makes it read.

A table that size does not fit moto (its Scan walks every item for each page), so a loopback
endpoint plays DynamoDB's Scan alone: pages of about 1 MB (DynamoDB's page limit) of tweet items
(~250 B each), with LastEvaluatedKey until the millionth item. The stack, its outputs and its
schema come from moto, where the stack is deployed first; only AWS_ENDPOINT_URL_DYNAMODB points at
the loopback endpoint. Peak RSS is the process's VmHWM (/proc), read every 20 ms while it runs
(wait4's ru_maxrss would count the Python process it was forked from).

    python tests/bench/scan_memory.py STREAM_BINARY [BEFORE_BINARY]
Needs AWS_ENDPOINT_URL (moto) and dummy credentials in the environment. SCAN_ITEMS (default
1000000) sets the table's size.
"""
import http.server
import json
import os
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

ITEMS = int(os.environ.get("SCAN_ITEMS", "1000000"))
PER_PAGE = 4000  # ~250 B items: about DynamoDB's 1 MB page
TARGET_MB = 30


def page_body(start):
    end = min(start + PER_PAGE, ITEMS)
    items = []
    for i in range(start, end):
        items.append(
            '{"Username":{"S":"user%03d"},"Id":{"S":"%019d"},"Timestamp":{"S":"2026-12-03T10:00:00.000Z"},'
            '"Message":{"S":"scan bench item %d: flat memory for any table, page by page, поток 🦀 %s"}}'
            % (i % 997, 2_000_000_000_000_000_000 + i, i, "x" * 80)
        )
    body = '{"Count":%d,"ScannedCount":%d,"Items":[%s]' % (end - start, end - start, ",".join(items))
    if end < ITEMS:
        body += ',"LastEvaluatedKey":{"Username":{"S":"user"},"Id":{"S":"%d"}}' % end
    return (body + "}").encode()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    scans = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("x-amz-target") != "DynamoDB_20120810.Scan":
            return self.reply(400, b'{"__type":"UnknownOperationException","message":"Scan only"}')
        self.server.scans += 1
        start = int(json.loads(body).get("ExclusiveStartKey", {}).get("Id", {}).get("S", "0"))
        self.reply(200, page_body(start))

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def hwm_mb(pid):
    """The process's peak resident set (VmHWM) so far, in MB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def measure(argv, env, head=False):
    """Runs argv, counting stdout's lines (or taking one with `head`): (lines, peak RSS MB, seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = [0.0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            now = hwm_mb(proc.pid)
            if now is not None:
                peak[0] = max(peak[0], now)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    lines = 0
    if head:
        proc.stdout.readline()
        lines = 1
        time.sleep(0.2)  # blocked on its next write: its peak so far is what a head costs
        peak[0] = max(peak[0], hwm_mb(proc.pid) or 0)
        proc.stdout.close()
    else:
        for _ in proc.stdout:
            lines += 1
    code = proc.wait()
    done.set()
    watcher.join()
    if code != 0:
        sys.exit(f"{' '.join(argv)} exited {code}")
    return lines, peak[0], time.perf_counter() - started


def main():
    binaries = [("ours", sys.argv[1])] + ([("before", sys.argv[2])] if len(sys.argv) > 2 else [])
    env = dict(os.environ)
    state = tempfile.mkdtemp()
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(state, "credentials")
    stack = "bench-scan"
    subprocess.run([sys.argv[1], "deploy", "--stack", stack, "--yes"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{server.server_address[1]}"
    pages = -(-ITEMS // PER_PAGE)
    print(f"scan-table over {ITEMS:,} items ({pages} pages of {PER_PAGE:,}), peak RSS (target ≤ {TARGET_MB} MB "
          f"whatever the table's size):")
    for name, binary in binaries:
        for fmt in ["jsonl", "json", "csv", "table"]:
            if name == "before" and fmt not in ("jsonl",):
                continue
            server.scans = 0
            lines, rss, secs = measure([binary, "scan-table", "--stack", stack, "-o", fmt], env)
            print(f"  {name:<6} -o {fmt:<5}  {lines:>9,} lines  peak RSS {rss:7.1f} MB  {secs:6.1f} s  "
                  f"{ITEMS / secs:>9,.0f} items/s  {server.scans} Scan calls")
        server.scans = 0
        _, rss, secs = measure([binary, "scan-table", "--stack", stack, "-o", "jsonl"], env, head=True)
        print(f"  {name:<6} | head -n 1      peak RSS {rss:7.1f} MB  {secs:6.1f} s  {server.scans} of {pages} pages read")
    subprocess.run([sys.argv[1], "destroy", "--stack", stack, "--yes"], env={**env, "AWS_ENDPOINT_URL_DYNAMODB": ""},
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()

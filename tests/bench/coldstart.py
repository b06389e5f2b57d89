#!/usr/bin/env python3
"""Cold start of the Lambda bootstrap, as `scripts/bench` reports it: from just before the process is
started to its first Runtime API request (GET .../invocation/next), which is where Lambda's init phase
ends. A loopback stub plays the Runtime API (it answers nothing useful: the process is killed once
it has asked). Each figure is over RUNS launches: the median and the 90th percentile of the wall
time, and the median CPU time (user + system, every thread) the process had used when it asked.
Measured twice: on the machine as it is, and busy (one spinning process per core beside it), since
Lambda's own hosts are shared too.

    tests/bench/coldstart.py BINARY [BEFORE_BINARY]
With BEFORE_BINARY (an older build), each row is measured with it too, in the same run.
COLDSTART_RUNS (default 40) sets the launches per figure.
"""
import glob
import http.server
import multiprocessing
import os
import socketserver
import statistics
import subprocess
import sys
import threading
import time

TARGET_MS = 10.0
LAST_MS = "14.3 / 26"


class Stub(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.asked = threading.Event()
        self.pid = 0
        self.at = 0.0
        self.cpu_ms = 0.0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        stub = self.server
        if not stub.asked.is_set():
            stub.at = time.perf_counter()
            stub.cpu_ms = cpu_ms(stub.pid)
            stub.asked.set()
        time.sleep(1)

    def log_message(self, *args):
        pass


def cpu_ms(pid):
    total = 0
    for stat in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(stat) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e6


def environment(api):
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": "coldstart",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDCOLDSTART",
        "AWS_SECRET_ACCESS_KEY": "coldstart",
        "AWS_SESSION_TOKEN": "coldstart",
        "LAMBDA_TASK_ROOT": "/tmp",
        "TABLE_NAME": "coldstart-EventData",
        "REJECTED_TABLE_NAME": "coldstart-Rejected",
    }


def launches(binary, runs):
    stub = Stub()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    env = environment(f"127.0.0.1:{stub.server_address[1]}")
    walls, cpus = [], []
    for _ in range(runs):
        stub.asked.clear()
        started = time.perf_counter()
        proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stub.pid = proc.pid
        if not stub.asked.wait(5):
            proc.kill()
            sys.exit(f"coldstart: {binary} never asked the Runtime API for an invocation")
        walls.append((stub.at - started) * 1000)
        cpus.append(stub.cpu_ms)
        proc.kill()
        proc.wait()
    stub.shutdown()
    walls.sort()
    return statistics.median(walls), walls[int(len(walls) * 0.9)], statistics.median(cpus)


def spin():
    while True:
        pass


def main():
    binaries = [("ours", sys.argv[1])] + ([("before", sys.argv[2])] if len(sys.argv) > 2 else [])
    runs = int(os.environ.get("COLDSTART_RUNS", "40"))
    print(f"cold start: process start to the first Runtime API `next` ({runs} launches each)")
    print(f"  {'machine':<30} {'build':<7} {'median ms':>10} {'p90 ms':>8} {'CPU ms':>7} {'target':>7}  last")
    rows = [("as it is (load %.1f)" % os.getloadavg()[0], 0), (f"busy ({os.cpu_count()} spinning processes)", os.cpu_count())]
    for label, spinners in rows:
        procs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(spinners)]
        for p in procs:
            p.start()
        try:
            for build, binary in binaries:
                median, p90, cpu = launches(binary, runs)
                print(f"  {label:<30} {build:<7} {median:>10.2f} {p90:>8.2f} {cpu:>7.2f} {'≤ %.0f' % TARGET_MS:>7}  {LAST_MS}")
        finally:
            for p in procs:
                p.terminate()


if __name__ == "__main__":
    main()

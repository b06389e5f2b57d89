#!/usr/bin/env python3
"""What a batch costs in AWS, as `scripts/bench` reports it: the billed duration of a 100-record
invocation, for our function (the shipped static binary) and for the Node.js baseline (the 2017
logic with the AWS SDK v3, tests/bench/node, started by tests/bench/node/runtime.mjs), each run as
Lambda runs a function: its own process, Lambda's environment variables, and a Runtime API on
loopback that hands it one event at a time. Duration is what Lambda's REPORT line bills: from the
moment the event is handed over (the `next` answer written) to the moment the response arrives,
rounded up to the millisecond. DynamoDB is the null endpoint (tests/bench/null_endpoint.py) with
its latency mode: 5 ± 2 ms per call, and again with none (0 ms). Warm invocations only (a stream's
function is warm nearly always); the first WARMUP of each run open the connections and warm the JIT.

Beside each row, what `stream plan` predicts for it, from the same model (CPU per record plus the
rounds of writes times the latency per call) and this run's measured CPU per record, and from
plan's default CPU per record: the bench checks the model, the model prices the plan.

    tests/bench/billed_duration.py BINARY
BILLED_INVOCATIONS (default 200) measured per row, BILLED_WARMUP (default 20) before them.
BILLED_CPU_SHARE_MB=256 (or =template: the template's MemorySize, as `stream plan` reads it) adds
the rows again with each function held to that memory's CPU share (Lambda gives one vCPU at
1,769 MB) by a cgroup CPU quota with the 100 ms period `stream local` uses (src/sandbox/limits.rs),
where a cgroup is writable; Lambda's own period is not documented, so these rows are an emulation,
and the plan's CPU per record (measured on a whole core) does not model them.
Figures are printed, never asserted; what is asserted is that every record reached the endpoint.
"""
import json
import math
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "bench" / "node"
RECORDS = 100
TARGET_RATIO = 0.5
API = "/2018-06-01/runtime"


# ---- The Runtime API ----

class RuntimeApi(ThreadingHTTPServer):
    """One execution environment's Runtime API: `invoke` offers an event and waits for the answer;
    the times it returns are taken where Lambda takes them (event written to `next`, response read)."""

    daemon_threads = True
    request_queue_size = 16

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.offers = queue.Queue()
        self.answers = queue.Queue()
        self.delivered = {}
        self.ready = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request, client_address):
        # The function is killed at the end of a run: its connections reset, which is no error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def address(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def invoke(self, body, timeout=30):
        """Hands `body` to the function; returns (duration ms, response body)."""
        request_id = str(uuid.uuid4())
        self.offers.put((request_id, body))
        kind, answered_id, payload, at = self.answers.get(timeout=timeout)
        if kind != "response" or answered_id != request_id:
            sys.exit(f"billed_duration: the invocation failed ({kind}): {payload[:300]!r}")
        return (at - self.delivered.pop(request_id)) * 1000.0, payload


class RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the client's
    # delayed ACK of the headers, 40 ms on Linux, which Lambda's own Runtime API never adds.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, body=b'{"status":"OK"}', headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):
        api = self.server
        if self.path != f"{API}/invocation/next":
            return self.reply(404, b"{}")
        api.ready.set()
        request_id, body = api.offers.get()
        deadline = int(time.time() * 1000) + 60_000
        self.reply(200, body, [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:billed"),
            ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"),
        ])
        # Lambda's duration starts when the event is handed over.
        api.delivered[request_id] = time.perf_counter()

    def do_POST(self):
        # ... and ends when the response arrives: timed before its body is read.
        at = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = self.path[len(API) + 1:].split("/")
        self.reply(202)
        if parts[0] == "init":
            self.server.answers.put(("init error", "", body, at))
        elif len(parts) == 3 and parts[0] == "invocation":
            kind = "response" if parts[2] == "response" else "error"
            self.server.answers.put((kind, parts[1], body, at))


# ---- Events ----

WORDS = ["stream", "data", "Kinesis", "DynamoDB", "Lambda", "serverless", "rust", "events", "batch", "café",
         "naïve", "データ", "실시간", "🚀", "🔥", "déjà vu", "über", "ζωντανά", "hôm nay", "the", "a", "of", "and"]
NAMES = ["Ada Lovelace", "Grace Hopper", "Linus", "Zoë Martin", "José García", "王芳", "Ørjan", "Chidi Okafor"]


def tweets(rng, start_id, n):
    """`n` v1.1-shaped tweets with ids from `start_id`, about as large as `stream produce`'s."""
    clock = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=start_id)
    out = []
    for i in range(n):
        words = []
        while len(" ".join(words)) < rng.randint(10, 120):
            words.append(rng.choice(WORDS))
        user = rng.randrange(500)
        out.append({
            "id_str": str(1_800_000_000_000_000_000 + start_id + i),
            "created_at": (clock + timedelta(milliseconds=20 * i)).strftime("%a %b %d %H:%M:%S +0000 %Y"),
            "text": " ".join(words),
            "truncated": False,
            "user": {"name": NAMES[user % len(NAMES)], "screen_name": f"user_{user}", "id_str": str(10_000_000 + user)},
            "lang": "en",
            "entities": {"hashtags": []},
        })
    return out


def event(rng, n, first):
    """A Kinesis event of `n` tweets of one shard, as Lambda sends it; sequence numbers from `first`."""
    import base64
    records = []
    for i, t in enumerate(tweets(rng, first, n)):
        seq = f"{first + i:056d}"
        records.append({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": t["user"]["screen_name"],
                "sequenceNumber": seq,
                "data": base64.b64encode(json.dumps(t, ensure_ascii=False, separators=(",", ":")).encode()).decode(),
                "approximateArrivalTimestamp": 1_735_689_600.0 + first / 1000,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"shardId-000000000000:{seq}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/billed",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/billed",
        })
    return json.dumps({"Records": records}).encode()


# ---- Processes ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NullEndpoint:
    """tests/bench/null_endpoint.py on a free port, with `flags` (its latency mode)."""

    def __init__(self, flags):
        port = free_port()
        # Its stderr is dropped: it reports each connection the killed function resets.
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests/bench/null_endpoint.py"), str(port), "1", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            sys.exit("billed_duration: the null endpoint did not start")
        self.url = f"http://127.0.0.1:{port}"

    def counts(self):
        import urllib.request
        with urllib.request.urlopen(f"{self.url}/counts") as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def cpu_ns(pid):
    """CPU time of process `pid` so far, every thread, from the scheduler's statistics."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


MB_PER_VCPU = 1769.0
CPU_PERIOD_US = 100_000


class CpuShare:
    """A cgroup (v1 cpu controller, or v2) holding a process to `mb`'s CPU share, as src/sandbox
    does for `stream local`; None where no cgroup can be made here."""

    def __init__(self, mb):
        self.quota = int(mb / MB_PER_VCPU * CPU_PERIOD_US)
        self.dir = None
        name = f"stream-billed-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        v1 = ("/sys/fs/cgroup/cpu", {"cpu.cfs_period_us": str(CPU_PERIOD_US), "cpu.cfs_quota_us": str(self.quota)})
        v2 = ("/sys/fs/cgroup", {"cpu.max": f"{self.quota} {CPU_PERIOD_US}"})
        # Only a real cgroup file system: on a v1 host /sys/fs/cgroup itself is a plain tmpfs.
        unified = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        for base, files in [v2] if unified else [v1]:
            if not (Path(base) / "cgroup.procs").exists():
                continue
            try:
                d = Path(base) / name
                d.mkdir()
                for f, v in files.items():
                    (d / f).write_text(v)
                self.dir = d
                return
            except OSError:
                try:
                    d.rmdir()
                except OSError:
                    pass

    def hold(self, pid):
        (self.dir / "cgroup.procs").write_text(str(pid))

    def remove(self):
        if self.dir:
            try:
                self.dir.rmdir()
            except OSError:
                pass


def environment(api, dynamodb, task_root):
    """Lambda's reserved variables (provided.al2023 and nodejs alike) and the function's own, as
    `stream local` sets them (src/sandbox): nothing of this machine's environment leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "_HANDLER": "bootstrap",
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": "billed",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/billed",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]0123456789abcdef",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDBILLED",
        "AWS_ACCESS_KEY": "AKIDBILLED",
        "AWS_SECRET_ACCESS_KEY": "billed",
        "AWS_SESSION_TOKEN": "billed",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
        "TABLE_NAME": "billed-EventData",
        "REJECTED_TABLE_NAME": "billed-Rejected",
        "RUST_LOG": "info",
    }


class Row:
    def __init__(self, durations, cpu_us_per_record):
        self.durations = durations
        self.billed = [math.ceil(d) for d in durations]
        self.cpu_us_per_record = cpu_us_per_record

    @property
    def mean_billed(self):
        return statistics.fmean(self.billed)


def latency_bound(latency, jitter, calls):
    """The mean billed ms of a function that spends no CPU at all: its `calls` writes all in flight at
    once as soon as the event is handed over (both functions here keep 8 in flight, a batch needs 4),
    each answered after latency ± jitter ms (uniform, as the null endpoint draws it), so it answers
    when the slowest one does: E[ceil(max of the draws)], exactly, from the maximum's distribution
    P(max <= x) = ((x - low) / (high - low)) ** calls. No function can be billed less on average, so
    this over Node.js's figure is the lowest ratio any implementation can reach at this latency."""
    low, high = latency - jitter, latency + jitter
    if high <= low:
        return float(math.ceil(latency))

    def below(x):
        return min(max((x - low) / (high - low), 0.0), 1.0) ** calls

    return sum(k * (below(k) - below(k - 1)) for k in range(math.floor(low), math.ceil(high) + 1))


def template_constants(binary):
    """The function's variables that our template (`stream template`) sets to a fixed text, not a
    !Ref: its malloc settings among them, which the deployed function runs with."""
    text = subprocess.run([binary, "template"], capture_output=True, text=True, check=True).stdout
    block = text.split("        Variables:\n", 1)[1]
    found = {}
    for line in block.splitlines():
        if not line.startswith("          "):
            break
        name, _, value = line.strip().partition(": ")
        if name and not name.startswith("#") and not value.startswith("!"):
            found[name] = value.strip('"')
    return found


def run(command, cwd, dynamodb, null, invocations, warmup, rng, share=None, own_env=None):
    """Starts `command` as the function (under `share`'s CPU quota, if any) with `own_env` beside
    Lambda's variables, warms it, and measures `invocations` 100-record events."""
    api = RuntimeApi()
    env = environment(api.address, dynamodb, cwd)
    for k, v in (own_env or {}).items():
        env.setdefault(k, v)
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if share:
        share.hold(proc.pid)
    # The function's log (stderr) is read away so a chatty function never blocks on a full pipe.
    log = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    if not api.ready.wait(15):
        proc.kill()
        sys.exit(f"billed_duration: {command} never asked for an invocation: {b''.join(log)[-500:]!r}")
    first = [0]

    def one():
        body = event(rng, RECORDS, first[0])
        first[0] += RECORDS
        return api.invoke(body)

    for _ in range(warmup):
        one()
    before, cpu0 = null.counts(), cpu_ns(proc.pid)
    durations = [one()[0] for _ in range(invocations)]
    cpu = cpu_ns(proc.pid) - cpu0
    after = null.counts()
    proc.kill()
    proc.wait()
    api.shutdown()
    # Correctness, not timing: every record of every measured invocation reached DynamoDB, in
    # BatchWriteItem calls of 25 (4 per 100-record batch).
    items = after["items"] - before["items"]
    calls = after["batch_write_calls"] - before["batch_write_calls"]
    want = invocations * RECORDS
    if items != want or calls != want // 25:
        sys.exit(f"billed_duration: {command[0]} wrote {items} items in {calls} calls, not {want} in {want // 25}")
    return Row(durations, cpu / 1000.0 / want)


def node_ready():
    """The baseline's packages, installed from tests/bench/node's lock file on first use."""
    if (NODE_DIR / "node_modules/@aws-sdk/client-dynamodb").is_dir():
        return True
    print("  (installing the Node.js baseline's packages: npm ci --prefix tests/bench/node)")
    try:
        subprocess.run(["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
                       check=True, stdout=subprocess.DEVNULL)
        return True
    except (OSError, subprocess.CalledProcessError):
        print("  (npm could not install tests/bench/node's packages: no Node.js rows in this run)")
        return False


def plan_json(binary, args):
    """`stream plan ARGS --output json` with no AWS at all, so it prices the template's defaults;
    None when it fails."""
    args = [binary, "plan", *args, "--output", "json", "--endpoint-url", "http://127.0.0.1:9"]
    with tempfile.TemporaryDirectory() as home:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "AWS_CONFIG_FILE": "/nonexistent",
               "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}
        out = subprocess.run(args, env=env, capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def plan(binary, latency_ms, cpu_us=None):
    """What `stream plan` bills a 100-record invocation: 1,000 records/s on one shard is 10 full
    batches a second."""
    args = ["--rate", "1000", "--batch-size", str(RECORDS), "--write-latency-ms", f"{latency_ms:g}"]
    if cpu_us is not None:
        args += ["--duration-us-per-record", f"{cpu_us:.3f}"]
    p = plan_json(binary, args)
    if p is None:
        return None
    d = p["lambda"]["billed_duration"]
    return d["billed_ms"], d["duration_ms"]


def main():
    binary = str(Path(sys.argv[1]).resolve())
    invocations = int(os.environ.get("BILLED_INVOCATIONS", "200"))
    warmup = int(os.environ.get("BILLED_WARMUP", "20"))
    functions = [("ours (static binary)", [binary], Path(binary).parent)]
    if node_ready():
        functions.append(("Node.js 2017 logic, SDK v3", ["node", "runtime.mjs"], NODE_DIR))
    # EVENT_SCHEMA names the file deploy puts beside the binary; these runs use the built-in schema.
    fixed = {k: v for k, v in template_constants(binary).items() if k != "EVENT_SCHEMA"}
    latencies = [("5 ± 2 ms", 5.0, 2.0, ["--latency-ms", "5", "--jitter-ms", "2", "--seed", "1"]),
                 ("0 ms", 0.0, 0.0, [])]
    share_mb = os.environ.get("BILLED_CPU_SHARE_MB", "0")
    if share_mb == "template":
        p = plan_json(binary, ["--rate", "1"])
        share_mb = p["inputs"]["memory_mb"] if p else 0
    share_mb = int(share_mb)
    shares = [None]
    if share_mb:
        probe = CpuShare(share_mb)
        probe.remove()
        if probe.dir:
            shares.append(share_mb)
        else:
            print(f"  (BILLED_CPU_SHARE_MB={share_mb}: no writable cgroup here, so no rows at that CPU share)")

    print(f"billed duration of a {RECORDS}-record invocation (REPORT: event handed over to response, rounded up "
          f"to the ms), {invocations} warm invocations per row after {warmup}; DynamoDB on the null endpoint")
    head = ("DynamoDB per call", "function", "billed ms mean", "median", "p90", "duration ms", "CPU µs/rec",
            "plan: measured CPU", "plan: default CPU")
    rows = []
    for (label, latency, jitter, flags), mb in [(lat, mb) for mb in shares for lat in latencies]:
        null = NullEndpoint(flags)
        measured = {}
        if mb:
            label = f"{label}, {mb} MB CPU"
        for name, command, cwd in functions:
            share = CpuShare(mb) if mb else None
            try:
                # Ours with its template's fixed variables; the Node.js baseline as the 2017 template
                # deployed it, with none.
                own_env = fixed if command == [binary] else None
                r = run(command, cwd, null.url, null, invocations, warmup, random.Random(7), share, own_env)
            finally:
                if share:
                    share.remove()
            measured[name] = r
            with_cpu = plan(binary, latency, r.cpu_us_per_record)
            # Plan's default CPU per record is our handler's; beside Node.js it would mean nothing.
            default = plan(binary, latency) if command == [binary] else None
            billed = sorted(r.billed)
            rows.append((label, name, f"{r.mean_billed:.2f}", f"{statistics.median(billed):.0f}",
                         f"{billed[int(len(billed) * 0.9)]}", f"{statistics.fmean(r.durations):.2f}",
                         f"{r.cpu_us_per_record:.1f}",
                         f"{with_cpu[0]} ms ({with_cpu[1]:.2f})" if with_cpu else "-",
                         f"{default[0]} ms ({default[1]:.2f})" if default else "-"))
        null.stop()
        names = list(measured)
        if len(names) == 2:
            ours, node = measured[names[0]], measured[names[1]]
            rows.append((label, "ours / Node.js (mean billed)", f"{ours.mean_billed / node.mean_billed:.3f}",
                         "", "", "", "", f"target ≤ {TARGET_RATIO:.2f}", ""))
            if latency:
                bound = latency_bound(latency, jitter, RECORDS // 25)
                rows.append((label, "no CPU at all: the latency alone", f"{bound:.2f}", "", "", "", "",
                             f"best ratio {bound / node.mean_billed:.3f}", ""))
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  " + "  ".join(str(c).ljust(widths[i]) if i < 2 else str(c).rjust(widths[i]) for i, c in enumerate(r)))
    print("  plan: what `stream plan --write-latency-ms` bills each invocation (its unrounded duration), from this "
          "run's CPU per record and from plan's default; it models the latency as its mean, so a round of calls "
          "in flight waits for the slowest of them in the measurement, not in the plan")


if __name__ == "__main__":
    main()

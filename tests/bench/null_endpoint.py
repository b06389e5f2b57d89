"""A loopback "null" AWS endpoint for `scripts/bench`: it answers at once and counts what it got, so
a figure measured against it is our own cost, without an emulator's. It serves Kinesis ListShards
(SHARDS shards splitting the key space evenly) and PutRecords (every entry accepted), and DynamoDB
BatchWriteItem (nothing left unprocessed) and PutItem (every condition holds); anything else is
refused with a 400. Point only those
services at it (AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB); the rest stays on the emulator.

  python tests/bench/null_endpoint.py PORT SHARDS [--latency-ms MS [--jitter-ms MS] [--seed N]]
Prints "ready" when listening on 127.0.0.1:PORT; GET /counts answers what it got so far as JSON.

By default every call is answered at once (CPU benches). With --latency-ms each AWS call is answered
that long after it arrived, give or take --jitter-ms (uniform), as a service a few milliseconds away
answers: DynamoDB's own figure is "single-digit millisecond"
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Introduction.html), so
`--latency-ms 5 --jitter-ms 2` waits 3-7 ms per call. Each connection is served by its own thread,
so the waits of calls in flight at once overlap, as they do at DynamoDB; the time spent building
the answer counts toward the wait. GET /counts is never delayed; its JSON then also says how many
calls were held (`delayed_calls`) and for how long in all (`delay_ms`).
"""
import argparse
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def arguments(argv):
    """PORT SHARDS as before; the latency flags are optional, and a bad value is refused in two
    lines (what is wrong, what to give) with exit code 2."""
    parser = argparse.ArgumentParser(prog="null_endpoint.py", add_help=True)
    parser.add_argument("port", type=int)
    parser.add_argument("shards", type=int)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    def refuse(what, hint):
        print(f"null_endpoint.py: error: {what}\nhint: {hint}", file=sys.stderr)
        sys.exit(2)

    if not args.latency_ms >= 0 or args.latency_ms == float("inf"):
        refuse(f"--latency-ms {args.latency_ms:g} is not a number of milliseconds from 0", "give --latency-ms a delay per call like 5, or 0 to answer at once")
    if not args.jitter_ms >= 0 or args.jitter_ms > args.latency_ms:
        refuse(f"--jitter-ms {args.jitter_ms:g} is not from 0 to --latency-ms ({args.latency_ms:g})", "give --jitter-ms at most --latency-ms, like --latency-ms 5 --jitter-ms 2")
    return args


args = arguments(sys.argv[1:])
port, shards = args.port, args.shards
lock = threading.Lock()
counts = {"put_records_calls": 0, "records": 0, "record_bytes": 0, "batch_write_calls": 0, "put_item_calls": 0, "items": 0}
if args.latency_ms > 0:
    # Only in latency mode: the counts of the default mode stay as they were.
    counts.update({"delayed_calls": 0, "delay_ms": 0.0})
sequence = [0]
# One generator for every thread (behind the lock): with --seed the waits repeat run to run.
jitter = random.Random(args.seed)


def delay_s():
    """This call's wait in seconds: --latency-ms ± --jitter-ms, uniform, counted."""
    if args.latency_ms <= 0:
        return 0.0
    with lock:
        ms = args.latency_ms + jitter.uniform(-args.jitter_ms, args.jitter_ms)
        counts["delayed_calls"] += 1
        counts["delay_ms"] += ms
    return ms / 1000.0


def shard_list():
    width = (2**128) // shards
    out = []
    for i in range(shards):
        end = 2**128 - 1 if i == shards - 1 else (i + 1) * width - 1
        out.append({
            "ShardId": f"shardId-{i:012d}",
            "HashKeyRange": {"StartingHashKey": str(i * width), "EndingHashKey": str(end)},
            "SequenceNumberRange": {"StartingSequenceNumber": "1"},
        })
    return out


def put_records(body):
    records = body.get("Records", [])
    with lock:
        counts["put_records_calls"] += 1
        counts["records"] += len(records)
        # Data is base64 in the JSON protocol: 3 bytes per 4 characters, less the padding.
        counts["record_bytes"] += sum(len(r["Data"]) * 3 // 4 - r["Data"][-2:].count("=") for r in records)
        first = sequence[0]
        sequence[0] += len(records)
    results = [{"SequenceNumber": str(first + i), "ShardId": "shardId-000000000000"} for i in range(len(records))]
    return {"FailedRecordCount": 0, "Records": results}


def batch_write(body):
    with lock:
        counts["batch_write_calls"] += 1
        counts["items"] += sum(len(v) for v in body.get("RequestItems", {}).values())
    return {"UnprocessedItems": {}}


def put_item(body):
    with lock:
        counts["put_item_calls"] += 1
        counts["items"] += 1
    return {}


HANDLERS = {
    "DynamoDB_20120810.PutItem": put_item,
    "Kinesis_20131202.ListShards": lambda body: {"Shards": shard_list()},
    "Kinesis_20131202.PutRecords": put_records,
    "DynamoDB_20120810.BatchWriteItem": batch_write,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer goes out in two writes (headers, body): with Nagle's algorithm the body waited for
    # the client's delayed ACK of the headers, 40 ms on Linux, so "at once" was 40 ms late on a
    # kept-alive connection. No answer or count changes; no CPU figure either.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, status, doc, content_type="application/x-amz-json-1.1"):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            self.answer(200, dict(counts), "application/json")

    def do_POST(self):
        # The wait runs from the request's arrival (its headers read), so the work below is part of it.
        until = time.perf_counter() + delay_s()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "")
        handler = HANDLERS.get(target)
        if handler is None:
            status, doc, kind = 400, {"__type": "UnknownOperationException", "message": f"null endpoint: {target}"}, "application/x-amz-json-1.1"
        else:
            kind = "application/x-amz-json-1.0" if target.startswith("DynamoDB") else "application/x-amz-json-1.1"
            status, doc = 200, handler(json.loads(body or b"{}"))
        left = until - time.perf_counter()
        if left > 0:
            time.sleep(left)
        self.answer(status, doc, kind)


# A client opening several connections at once (8 writes in flight) overflowed the default listen
# backlog of 5 now and then, and the kernel's SYN retry held a call back a whole second.
ThreadingHTTPServer.request_queue_size = 128
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()

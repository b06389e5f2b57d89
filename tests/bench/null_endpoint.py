"""A loopback "null" AWS endpoint for `scripts/bench`: it answers at once and counts what it got, so
a figure measured against it is our own cost, without an emulator's. It serves Kinesis ListShards
(SHARDS shards splitting the key space evenly) and PutRecords (every entry accepted), and DynamoDB
BatchWriteItem (nothing left unprocessed) and PutItem (every condition holds); anything else is
refused with a 400. Point only those
services at it (AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB); the rest stays on the emulator.

  python tests/bench/null_endpoint.py PORT SHARDS
Prints "ready" when listening on 127.0.0.1:PORT; GET /counts answers what it got so far as JSON.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, shards = int(sys.argv[1]), int(sys.argv[2])
lock = threading.Lock()
counts = {"put_records_calls": 0, "records": 0, "record_bytes": 0, "batch_write_calls": 0, "put_item_calls": 0, "items": 0}
sequence = [0]


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
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "")
        handler = HANDLERS.get(target)
        if handler is None:
            self.answer(400, {"__type": "UnknownOperationException", "message": f"null endpoint: {target}"})
            return
        kind = "application/x-amz-json-1.0" if target.startswith("DynamoDB") else "application/x-amz-json-1.1"
        self.answer(200, handler(json.loads(body or b"{}")), kind)


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()

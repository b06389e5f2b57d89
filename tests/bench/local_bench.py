"""`scripts/bench`, local pipeline part: the whole path of `stream local` (the uploaded static
bootstrap under the local Runtime API, the mapping's poller, DynamoDB on moto).

1. Latency: with `stream local` running (batching window 0, as deployed), one tweet at a time is put
   with PutRecord and DynamoDB GetItem is polled every 2 ms until the item is readable; p50, p90,
   p99 and max of the time from the PutRecord call to the first successful read.
2. Throughput: N tweets are put first, then `stream local --until-idle` processes them; records/s
   over its wall time, for batch sizes 100 and 1,000 and parallelization 1 and 4.

  python tests/bench/local_bench.py STREAM_BINARY
Needs AWS_ENDPOINT_URL (moto) and dummy credentials in the environment.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import boto3

binary = sys.argv[1]
env = dict(os.environ)
state = tempfile.mkdtemp()
env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(state, "credentials")
env["STREAM_STATE_DIR"] = os.path.join(state, "local")
env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
region = env["AWS_DEFAULT_REGION"]
endpoint = env["AWS_ENDPOINT_URL"]
kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name=region)
dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=region)


def run(*args):
    out = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"stream {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def tweet(i, user):
    return json.dumps({
        "id_str": str(1_900_000_000_000_000_000 + i),
        "created_at": "Wed Oct 10 20:19:24 +0000 2018",
        "text": f"latency probe {i} — поток 🦀",
        "user": {"name": f"probe {user}", "screen_name": f"probe_{user}", "id_str": str(user)},
    }, ensure_ascii=False).encode()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def latency(samples=300):
    stack = "bench-latency"
    run("deploy", "--stack", stack, "--yes")
    local = subprocess.Popen([binary, "local", "--stack", stack], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        # Warm up: the first record also starts the bootstrap (a cold start).
        times = []
        for i in range(samples + 5):
            user = i % 50
            start = time.monotonic()
            kinesis.put_record(StreamName=f"{stack}-Stream", PartitionKey=f"probe_{user}", Data=tweet(i, user))
            key = {"Username": {"S": f"probe {user}"}, "Id": {"S": str(1_900_000_000_000_000_000 + i)}}
            while "Item" not in dynamodb.get_item(TableName=f"{stack}-EventData", Key=key):
                time.sleep(0.002)
                if time.monotonic() - start > 30:
                    sys.exit("an item did not appear within 30 s")
            if i >= 5:
                times.append((time.monotonic() - start) * 1000)
    finally:
        local.send_signal(signal.SIGINT)
        local.wait(timeout=60)
    run("destroy", "--stack", stack, "--yes")
    print(f"latency PutRecord → item readable, {len(times)} records one at a time: "
          f"p50 {pct(times, 50):.0f} ms, p90 {pct(times, 90):.0f} ms, p99 {pct(times, 99):.0f} ms, "
          f"max {max(times):.0f} ms")


def throughput(n, batch, parallelization):
    stack = f"bench-tp-{batch}-{parallelization}"
    run("deploy", "--stack", stack, "--yes", "--batch-size", str(batch), "--parallelization", str(parallelization))
    run("produce", "--stack", stack, "--count", str(n), "--seed", "7", "--batch-size", "500")
    start = time.monotonic()
    summary = json.loads(run("local", "--stack", stack, "--until-idle", "--output", "json"))
    wall = time.monotonic() - start
    assert summary["records"] == n, summary
    run("destroy", "--stack", stack, "--yes")
    print(f"| {batch} | {parallelization} | {n:,} | {wall:.2f} | {n / wall:,.0f} | "
          f"{summary['invocations']} | {summary['peak_concurrency']} |")


latency()
print("| batch size | parallelization | records | wall s (incl. start) | records/s | invocations | peak concurrency |")
print("|---|---|---|---|---|---|---|")
for batch, par in [(100, 1), (1000, 1), (100, 4), (1000, 4)]:
    throughput(10_000, batch, par)

"""`scripts/bench`, producer part: one table for `stream produce` beside a plain boto3 PutRecords
loop (tests/bench/boto3_put_records.py: 500 per call, failed entries resent) on the same records.

Every configuration runs on a fresh stream (moto slows down as a stream fills): a new stack per run
against moto, a new loopback null endpoint (tests/bench/null_endpoint.py, PutRecords answered at once)
per run against it. The boto3 baseline gets the same records, on its own fresh stream, in the same
run. Each row is run REPEATS times (default 3) and the median of each figure is printed.

  records/s   user records accepted per second of the producer's delivery (its summary's
              `seconds`: first record to last answer), and that as % of the shards' limit: 1,000
              records/s per shard plain, 1 MiB/s of user-record bytes per shard with --aggregate
              (targets: >= 95 % and >= 90 %)
  CPU us/rec  the whole producer process, user + system (wait4 rusage of the child), per record;
              the same for the boto3 script, and ours / boto3 (target <= 0.10)
  marginal    (null endpoint) what one more record costs: (CPU of the run - CPU of a run of
              BASE_RECORDS) / (records - BASE_RECORDS), start-up and stack lookup left out, as
              the SDK floor is measured; beside it the PutRecords floor of that many shards
              (tests/bench/sdk_floor.rs: run in turn with the row's own runs when SDK_FLOOR_BIN
              names it, as scripts/bench does; else scripts/bench's floor step) and the ratio
              (target <= 1.5); and for the plain rows the same floor paced as ours is (a call of 500
              per shard every half second, the shard's 1,000 records/s), of the row's records: a
              paced run is mostly idle, and waking for each call costs the SDK alone several times
              its flat-out figure on this machine (measured: 1 shard 7-13 against 1.8 us/record)

The emulator's own ceiling is measured in the same run: boto3 flat out (one thread per shard, each
putting only keys of its shard, so no two calls touch one shard at once) on a fresh stream, in
records/s with the same tweets and in MiB/s with aggregate-sized records.

  python tests/bench/produce_bench.py STREAM_BINARY [BEFORE_BINARY]
With BEFORE_BINARY (an older build of `stream`), each row is run with it too, in the same run, on
fresh streams of its own, and printed beside ours as "before".
Needs AWS_ENDPOINT_URL (moto) and dummy credentials in the environment. PRODUCE_BENCH_REPEATS and
PRODUCE_BENCH_SECONDS (shard-seconds of data per run, default 8) scale it.
"""
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

binary = sys.argv[1]
before = sys.argv[2] if len(sys.argv) > 2 else None
here = os.path.dirname(os.path.abspath(__file__))
repeats = int(os.environ.get("PRODUCE_BENCH_REPEATS", "3"))
seconds = float(os.environ.get("PRODUCE_BENCH_SECONDS", "8"))
workdir = tempfile.mkdtemp(prefix="produce-bench-")
env = dict(os.environ)
env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(workdir, "credentials")
# boto3 reads AWS_DEFAULT_REGION; the Rust SDK reads AWS_REGION too.
env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
env.pop("AWS_ENDPOINT_URL_KINESIS", None)
# The bench's own boto3 clients (stream setup, the ceiling) talk to moto with the same settings.
os.environ.pop("AWS_ENDPOINT_URL_KINESIS", None)
os.environ.setdefault("AWS_DEFAULT_REGION", env["AWS_DEFAULT_REGION"])

SHARD_RECORDS = 1000
# The short run each null-endpoint row's marginal figure subtracts.
BASE_RECORDS = 1000


def floors():
    """The SDK's PutRecords floor per record by shard count, as scripts/bench measured it in this
    run (FLOOR_PUTRECORDS_<shards>=us in $CARGO_TARGET_DIR/bench-floor.env); empty without it."""
    path = os.path.join(os.environ.get("CARGO_TARGET_DIR", ""), "bench-floor.env")
    found = {}
    if os.path.exists(path):
        for line in open(path):
            name, _, value = line.strip().partition("=")
            if name.startswith("FLOOR_PUTRECORDS_"):
                found[int(name.rsplit("_", 1)[1])] = float(value)
    return found


FLOORS = floors()


def floor_now(shards, path, paced_records=None):
    """The PutRecords floor measured now (SDK_FLOOR_BIN, tests/bench/sdk_floor.rs, which scripts/bench
    passes), on a fresh null endpoint of `shards` shards, us per record; None without it. Each
    null-endpoint row runs it in turn with its own runs: the machine's speed drifts over minutes.
    The floor sends the row's own records (`--data path`, the file ours reads), so both figures
    are of the same requests. With `paced_records`, the floor of that many records sent at a
    shard's limit, as ours are (`sdk_floor putrecords --paced`: a call of 500 per shard every half
    second)."""
    program = os.environ.get("SDK_FLOOR_BIN")
    if not program:
        return None
    null = NullEndpoint(shards)
    try:
        run_env = dict(env, AWS_ENDPOINT_URL=null.url, AWS_EC2_METADATA_DISABLED="true")
        shape = ["--records", str(paced_records), "--paced"] if paced_records else ["--records", "20000"]
        out = subprocess.run([program, "putrecords", "--shards", str(shards), "--data", path] + shape, env=run_env,
                             check=True, capture_output=True, text=True).stdout
    finally:
        null.stop()
    # "floor PutRecords shards=4: 2.21 us/record"
    return float(out.rsplit(": ", 1)[1].split()[0])
SHARD_BYTES = 1024 * 1024
WORDS = "stream data real-time shard rust lambda серверный поток ストリーム 処理 数据 실시간 datos Straße café 🚀 🔥 😂 👍🏽 🦀".split()


def tweets(n, seed):
    rng = random.Random(seed)
    for i in range(n):
        user = rng.randrange(500)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 40)))
        yield json.dumps({
            "id_str": str(1_800_000_000_000_000_000 + seed * 10_000_000 + i),
            "created_at": "Wed Oct 10 20:19:24 +0000 2018",
            "text": text[:280],
            "user": {"name": f"User {user}", "screen_name": f"user_{user}", "id_str": str(10_000 + user)},
            "lang": "en",
            "entities": {"hashtags": []},
        }, ensure_ascii=False)


def tweet_file(n, seed):
    path = os.path.join(workdir, f"tweets-{n}-{seed}.jsonl")
    if not os.path.exists(path):
        with open(path, "w") as f:
            for line in tweets(n, seed):
                f.write(line + "\n")
    return path


def measure(cmd, run_env):
    """Runs cmd; returns (wall s, CPU s of that process alone, stdout). Fails the bench on error."""
    err = tempfile.TemporaryFile()
    start = time.monotonic()
    p = subprocess.Popen(cmd, env=run_env, stdout=subprocess.PIPE, stderr=err)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        err.seek(0)
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{out.decode()}\n{err.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime, out.decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


stacks = [0]


def fresh_stack(shards, mapped=False):
    """A new stack on moto, so a new, empty stream; returns (stack, stream). Unless `mapped`, the
    stream is then made again, empty and without the stack's event source mapping: for a mapped
    stream moto 5.2.5 tries to run the function through Docker once per record put (whatever
    its lambda use_docker setting), which caps a deployed stream near 450 records/s and would
    measure that, not Kinesis. The stack's outputs still name the stream."""
    import boto3
    stacks[0] += 1
    stack = f"pb{os.getpid()}x{stacks[0]}"
    measure([binary, "deploy", "--stack", stack, "--shards", str(shards), "--yes"], env)
    stream = f"{stack}-Stream"
    if not mapped:
        kinesis = boto3.client("kinesis")
        kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
        kinesis.create_stream(StreamName=stream, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    return stack, stream


class NullEndpoint:
    """A fresh loopback null endpoint with `shards` shards, for one run."""

    def __init__(self, shards):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, os.path.join(here, "null_endpoint.py"), str(self.port),
                                      str(shards)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.url = f"http://127.0.0.1:{self.port}"

    def counts(self):
        return json.load(urllib.request.urlopen(self.url + "/counts", timeout=5))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def target_env(target, shards):
    """The environment and the endpoint object for one run on a fresh stream of `target`."""
    if target == "moto":
        return dict(env), None
    null = NullEndpoint(shards)
    # The stack lookup stays on moto; only Kinesis goes to the null endpoint.
    return dict(env, AWS_ENDPOINT_URL_KINESIS=null.url), null


# The lookup stack for null-endpoint runs: its stream is never written.
lookup_stack = {}


def stack_for(target, shards):
    if target == "moto":
        return fresh_stack(shards)
    if shards not in lookup_stack:
        lookup_stack[shards] = fresh_stack(shards)
    return lookup_stack[shards]


def ours(target, shards, path, count, flags, program=None):
    stack, _ = stack_for(target, shards)
    run_env, null = target_env(target, shards)
    try:
        cmd = [program or binary, "produce", "--stack", stack, "--source", "file", "--file", path, "--output", "json",
               "--dead-letter", os.path.join(workdir, "dead.jsonl")] + flags
        _, cpu, out = measure(cmd, run_env)
        summary = json.loads(out)
        assert summary["sent"] == count and summary["failed"] == 0, out
        if null is not None:
            got = null.counts()
            assert got["records"] == summary["kinesis_records"], (got, out)
    finally:
        if null is not None:
            null.stop()
    return {"cpu": cpu, "sent": summary["sent"], "bytes": summary["bytes"], "seconds": summary["seconds"],
            "calls": summary["calls"]}


def boto3_loop(target, shards, path, count):
    _, stream = fresh_stack(shards) if target == "moto" else stack_for(target, shards)
    run_env, null = target_env(target, shards)
    try:
        _, cpu, out = measure([sys.executable, os.path.join(here, "boto3_put_records.py"), stream, path], run_env)
        assert int(out.strip()) == count, out
    finally:
        if null is not None:
            null.stop()
    return cpu


def median(values):
    return statistics.median(values)


def user_bytes(path):
    with open(path, "rb") as f:
        return sum(len(line.rstrip(b"\n")) for line in f)


CONFIGS = [
    # (shards, flags, plain or aggregated)
    (1, [], False),
    (4, [], False),
    (1, ["--aggregate"], True),
    (4, ["--aggregate"], True),
    (4, ["--batch-size", "100"], False),
]


def count_for(shards, aggregated, mean_record):
    per_shard = SHARD_BYTES / mean_record if aggregated else SHARD_RECORDS
    return int(per_shard * shards * seconds)


def summarise(target, name, label, runs, count, total, shards, aggregated, boto_us, bases, floor=None, paced=None):
    rate = median([r["sent"] / r["seconds"] for r in runs])
    mib = median([total / r["seconds"] / SHARD_BYTES for r in runs])
    limit = mib / shards if aggregated else rate / SHARD_RECORDS / shards
    ours_us = median([r["cpu"] / count * 1e6 for r in runs])
    marginal = median([(r["cpu"] - b) / (count - BASE_RECORDS) * 1e6 for r, b in zip(runs, bases)]) if bases else None
    print(f"  ... {target} {name} {label}: {rate:.0f} records/s, {ours_us:.2f} us/rec vs boto3 {boto_us:.2f}"
          + (f", marginal {marginal:.2f}" if marginal is not None else ""), file=sys.stderr, flush=True)
    return (target, name, label, count, rate, mib, limit * 100, 90 if aggregated else 95, ours_us, boto_us,
            median([r["calls"] for r in runs]), marginal, floor or FLOORS.get(shards), paced)


def run_table(target, mean_record):
    rows = []
    for n, (shards, flags, aggregated) in enumerate(CONFIGS):
        count = count_for(shards, aggregated, mean_record)
        path = tweet_file(count, 100 + n)
        total = user_bytes(path)
        base_path = tweet_file(BASE_RECORDS, 100 + n)
        runs, old, baseline, bases, old_bases, floors_now, paced_now = [], [], [], [], [], [], []
        # The paced floor has the shape of the plain rows only (500 plain records a call).
        paced_shape = target == "null" and not flags
        for _ in range(repeats):
            if target == "null":
                floors_now.append(floor_now(shards, path))
            if paced_shape:
                paced_now.append(floor_now(shards, path, count))
            runs.append(ours(target, shards, path, count, flags))
            if target == "null":
                bases.append(ours(target, shards, base_path, BASE_RECORDS, flags)["cpu"])
            if before:
                old.append(ours(target, shards, path, count, flags, before))
                if target == "null":
                    old_bases.append(ours(target, shards, base_path, BASE_RECORDS, flags, before)["cpu"])
            baseline.append(boto3_loop(target, shards, path, count))
        boto_us = median(baseline) / count * 1e6
        name = f"{shards} shard{'s' if shards > 1 else ' '} {' '.join(flags) or 'plain'}"
        floor = median(floors_now) if floors_now and None not in floors_now else None
        paced = median(paced_now) if paced_now and None not in paced_now else None
        rows.append(summarise(target, name, "ours", runs, count, total, shards, aggregated, boto_us, bases, floor,
                              paced))
        if before:
            rows.append(summarise(target, name, "before", old, count, total, shards, aggregated, boto_us, old_bases,
                                  floor, paced))
    return rows


def ceiling_thread(client, stream, batches, out, index):
    sent = 0
    for batch in batches:
        pending = batch
        while pending:
            res = client.put_records(StreamName=stream, Records=pending)
            pending = [e for e, r in zip(pending, res["Records"]) if "ErrorCode" in r]
            sent += len(batch) - len(pending)
    out[index] = sent


def ceiling(shards, records, mapped=False):
    """boto3 flat out on a fresh moto stream, one thread per shard: (records/s, MiB/s)."""
    import boto3
    _, stream = fresh_stack(shards, mapped)
    client = boto3.client("kinesis")
    width = 2**128 // shards
    per_shard = [[] for _ in range(shards)]
    for key, data in records:
        shard = min(int.from_bytes(hashlib.md5(key.encode()).digest(), "big") // width, shards - 1)
        per_shard[shard].append({"PartitionKey": key, "Data": data})
    batches = []
    for entries in per_shard:
        shard_batches, batch, size = [], [], 0
        for e in entries:
            if len(batch) == 500 or size + len(e["Data"]) > 5 * 1024 * 1024:
                shard_batches.append(batch)
                batch, size = [], 0
            batch.append(e)
            size += len(e["Data"])
        if batch:
            shard_batches.append(batch)
        batches.append(shard_batches)
    out = [0] * shards
    threads = [threading.Thread(target=ceiling_thread, args=(client, stream, batches[i], out, i)) for i in range(shards)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    total = sum(len(e["Data"]) for b in batches for bb in b for e in bb)
    return sum(out) / wall, total / wall / SHARD_BYTES


def main():
    sample = list(tweets(2000, 1))
    mean_record = statistics.mean(len(t.encode()) for t in sample)
    print(f"producer bench: tweets of {mean_record:.0f} bytes on average, {repeats} run(s) per row (median), "
          f"about {seconds:.0f} s of shard capacity per run", flush=True)

    print("\nemulator ceiling (moto, fresh stream, boto3 flat out, one thread per shard)", flush=True)
    ceilings = {}
    for shards in (1, 4):
        count = int(SHARD_RECORDS * 5 * shards)
        plain = [(json.loads(t)["user"]["screen_name"], t.encode()) for t in tweets(count, 7)]
        rate, _ = ceiling(shards, plain)
        big = [(f"user_{i}", os.urandom(51_200)) for i in range(int(8 * shards * 1024 * 1024 / 51_200))]
        _, mib = ceiling(shards, big)
        ceilings[shards] = (rate, mib)
        print(f"  {shards} shard(s): {rate:8.0f} records/s of tweets, {mib:6.2f} MiB/s of 50 KB records", flush=True)
    mapped, _ = ceiling(1, [(json.loads(t)["user"]["screen_name"], t.encode()) for t in tweets(2000, 8)], True)
    print(f"  1 shard, as deployed (event source mapping kept): {mapped:.0f} records/s of tweets "
          "(moto's per-record invoke attempt; the runs below use streams without it)", flush=True)

    rows = run_table("null", mean_record) + run_table("moto", mean_record)
    print("\nstream produce --source file vs the boto3 loop on the same records, fresh stream per run")
    print(f"{'endpoint':<9}{'configuration':<26}{'binary':<8}{'records':>8}{'records/s':>11}{'MiB/s':>8}{'% limit':>9}"
          f"{'target':>8}{'calls':>7}{'CPU us/rec':>12}{'boto3 us/rec':>14}{'ours/boto3':>12}{'target':>8}"
          f"{'marginal':>10}{'floor':>7}{'/floor':>8}{'target':>8}{'paced floor':>13}{'/paced':>8}")
    for target, name, label, count, rate, mib, pct, goal, ours_us, boto_us, calls, marginal, floor, paced in rows:
        vs_floor = ""
        if marginal is not None:
            vs_floor = f"{marginal:>10.2f}" + (f"{floor:>7.2f}{marginal / floor:>8.2f}{'<=1.5':>8}" if floor else
                                              f"{'-':>7}{'-':>8}{'<=1.5':>8}")
            vs_floor += f"{paced:>13.2f}{marginal / paced:>8.2f}" if paced else f"{'-':>13}{'-':>8}"
        print(f"{target:<9}{name:<26}{label:<8}{count:>8}{rate:>11.0f}{mib:>8.2f}{pct:>8.1f}%{'>=' + str(goal) + '%':>8}"
              f"{calls:>7.0f}{ours_us:>12.2f}{boto_us:>14.2f}{ours_us / boto_us:>12.3f}{'<=0.10':>8}{vs_floor}")
    print("\n% limit: records/s against 1,000 per shard (plain) or user-record MiB/s against 1 MiB/s per shard "
          "(--aggregate);\nagainst moto, compare with the emulator ceiling above when it is the lower of the two.")


main()

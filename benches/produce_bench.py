"""`scripts/bench`, producer part: records/s and producer CPU seconds per 100,000 records for
`stream produce` against moto with batch sizes 1, 100 and 500, with and without KPL aggregation,
and for a plain boto3 put_records script on the same records. CPU is the producer process's own
(user + system), measured as the children's rusage; moto's CPU is not counted.

  python benches/produce_bench.py STREAM_BINARY
Needs AWS_ENDPOINT_URL (moto) and dummy credentials in the environment.
"""
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

binary = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
env = dict(os.environ)
env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(tempfile.mkdtemp(), "credentials")
# boto3 reads AWS_DEFAULT_REGION; the Rust SDK reads AWS_REGION too.
env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))

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


def timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def deploy(stack):
    timed([binary, "deploy", "--stack", stack, "--shards", "2"])
    out = subprocess.run([binary, "scan-table", "--stack", stack, "--count"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return f"{stack}-Stream"


print("producer against moto (2 shards)               records   wall s   records/s   CPU s per 100k records")
configs = [
    ("stream produce, batch 1", 2_000, ["--batch-size", "1"]),
    ("stream produce, batch 100", 20_000, ["--batch-size", "100"]),
    ("stream produce, batch 500", 20_000, ["--batch-size", "500"]),
    ("stream produce, batch 1, --aggregate", 2_000, ["--batch-size", "1", "--aggregate"]),
    ("stream produce, batch 100, --aggregate", 20_000, ["--batch-size", "100", "--aggregate"]),
    ("stream produce, batch 500, --aggregate", 20_000, ["--batch-size", "500", "--aggregate"]),
]
workdir = tempfile.mkdtemp()
for n, (name, count, flags) in enumerate(configs):
    path = os.path.join(workdir, f"in-{n}.jsonl")
    with open(path, "w") as f:
        for line in tweets(count, n):
            f.write(line + "\n")
    stack = f"bench-produce-{os.getpid()}-{n}"
    deploy(stack)
    wall, cpu, out = timed([binary, "produce", "--stack", stack, "--source", "file", "--file", path, "--output", "json"] + flags)
    sent = json.loads(out)["sent"]
    assert sent == count, out
    print(f"  {name:<44} {count:>7}   {wall:6.2f}   {count / wall:9.0f}   {cpu / count * 100_000:8.2f}")

# The same records through boto3, batches of 500.
count = 20_000
path = os.path.join(workdir, "boto3.jsonl")
with open(path, "w") as f:
    for line in tweets(count, 99):
        f.write(line + "\n")
stack = f"bench-produce-{os.getpid()}-boto3"
stream = deploy(stack)
wall, cpu, out = timed([sys.executable, os.path.join(here, "boto3_put_records.py"), stream, path])
assert int(out.strip()) == count, out
print(f"  {'boto3 put_records script, batch 500':<44} {count:>7}   {wall:6.2f}   {count / wall:9.0f}   {cpu / count * 100_000:8.2f}")

"""The comparison point for `stream produce`: a plain boto3 producer, as most Python producers are
written. Reads JSON lines of tweets and puts them with put_records in batches of 500, resending the
entries that failed, one call at a time.

  python tests/bench/boto3_put_records.py STREAM FILE
"""
import json
import sys
import time

import boto3

stream, path = sys.argv[1], sys.argv[2]
client = boto3.client("kinesis")
batch = []
sent = 0


def flush(entries):
    global sent
    while entries:
        out = client.put_records(StreamName=stream, Records=entries)
        failed = [e for e, r in zip(entries, out["Records"]) if "ErrorCode" in r]
        sent += len(entries) - len(failed)
        entries = failed
        if failed:
            time.sleep(0.1)


with open(path, "rb") as f:
    for line in f:
        tweet = json.loads(line)
        batch.append({"Data": line.rstrip(b"\n"), "PartitionKey": tweet["user"]["screen_name"]})
        if len(batch) == 500:
            flush(batch)
            batch = []
flush(batch)
print(sent)

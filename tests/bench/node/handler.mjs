// The 2017 function's logic, written fresh for Node 18+ and the AWS SDK v3: each Kinesis record's
// data is base64-decoded, parsed as a tweet, and written as {Username, Id, Timestamp, Message} with
// BatchWriteItem, 25 requests per call (DynamoDB's limit), a few calls at once; what comes back in
// UnprocessedItems is sent again. The same-run baseline that tests/bench/handler.rs compares us with.
import { BatchWriteItemCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";

const client = new DynamoDBClient({});
const TABLE = process.env.TABLE_NAME;
const CHUNK = 25;
const CONCURRENCY = 8;

function toPut(record) {
  const tweet = JSON.parse(Buffer.from(record.kinesis.data, "base64").toString("utf8"));
  return {
    PutRequest: {
      Item: {
        Username: { S: tweet.user.name },
        Id: { S: tweet.id_str },
        Timestamp: { S: new Date(tweet.created_at).toISOString() },
        Message: { S: tweet.text },
      },
    },
  };
}

async function writeChunk(requests) {
  let pending = requests;
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 2000)));
    const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: pending } }));
    pending = out.UnprocessedItems?.[TABLE] ?? [];
    if (attempt >= 8 && pending.length > 0) throw new Error(`${pending.length} items left unprocessed`);
  }
  return requests.length;
}

export async function handler(event) {
  const puts = event.Records.map(toPut);
  const chunks = [];
  for (let i = 0; i < puts.length; i += CHUNK) chunks.push(puts.slice(i, i + CHUNK));
  let next = 0;
  let written = 0;
  const worker = async () => {
    while (next < chunks.length) {
      const n = await writeChunk(chunks[next++]);
      written += n;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return written;
}

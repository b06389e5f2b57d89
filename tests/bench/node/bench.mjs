// Runs handler.mjs over one Kinesis event read from a file, as tests/bench/handler.rs asks it to:
//   node bench.mjs EVENT_JSON ITERATIONS     (TABLE_NAME, AWS_ENDPOINT_URL[_DYNAMODB], credentials)
// One warm-up invocation (connections, JIT), then ITERATIONS measured ones; prints one JSON line
// with the whole process's CPU (process.cpuUsage: every thread, user + system) per record.
import { readFileSync } from "node:fs";
import { handler } from "./handler.mjs";

const [file, iterations = "3"] = process.argv.slice(2);
const body = readFileSync(file, "utf8");
const records = JSON.parse(body).Records.length;

const invoke = async () => {
  // Lambda hands the function a parsed event: parsing the body is part of its cost.
  const written = await handler(JSON.parse(body));
  if (written !== records) throw new Error(`wrote ${written} of ${records} records`);
};

await invoke();
const n = Number(iterations);
const cpu0 = process.cpuUsage();
const wall0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) await invoke();
const cpu = process.cpuUsage(cpu0);
const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
const total = records * n;
console.log(
  JSON.stringify({
    records,
    iterations: n,
    cpu_us_per_record: (cpu.user + cpu.system) / total,
    user_us: cpu.user,
    system_us: cpu.system,
    records_per_s: total / (wallMs / 1000),
    peak_rss_kb: Math.round(process.resourceUsage().maxRSS),
  }),
);

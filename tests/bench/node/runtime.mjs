// The Node.js baseline as Lambda runs a Node function: a runtime client that asks the Runtime API
// (AWS_LAMBDA_RUNTIME_API) for the next invocation, hands its parsed event to handler.mjs, and posts
// what the handler returns as the response (a thrown error to .../error). tests/bench/billed_duration.py
// starts it as the bootstrap:  node runtime.mjs
// It does only what the managed nodejs runtime must do for every invocation (no context object, no
// log patching, no X-Ray), so the baseline's billed duration is, if anything, on the low side.
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
import http from "node:http";
import { handler } from "./handler.mjs";

const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const API = "/2018-06-01/runtime";
// One kept-alive connection, as the managed runtime holds one to the Runtime API.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const request = http.request({ host, port, method, path, agent, headers }, (response) => {
      const chunks = [];
      response.on("data", (c) => chunks.push(c));
      response.on("end", () =>
        resolve({ headers: response.headers, body: Buffer.concat(chunks).toString("utf8") }),
      );
    });
    request.on("error", reject);
    request.end(body);
  });
}

for (;;) {
  const next = await call("GET", `${API}/invocation/next`);
  const id = next.headers["lambda-runtime-aws-request-id"];
  try {
    const written = await handler(JSON.parse(next.body));
    await call("POST", `${API}/invocation/${id}/response`, JSON.stringify({ written }));
  } catch (e) {
    const error = JSON.stringify({ errorType: e.name, errorMessage: e.message, stackTrace: [] });
    await call("POST", `${API}/invocation/${id}/error`, error, {
      "Lambda-Runtime-Function-Error-Type": "Runtime.HandlerError",
    });
  }
}

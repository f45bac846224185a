// fal's JS client (@fal-ai/client 1.10.1) against the gateway, in one of its two set-ups; run by
// tests/e2e/test_fal_js_client.py as: node scenarios.mjs <middleware|proxy> <scenario> <gateway url> <key>
// Prints one JSON line: what the client saw.
import { ApiError, createFalClient } from "@fal-ai/client";

const I2V = "fal-ai/bytedance/seedance/v1.5/pro/image-to-video";
const T2V = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video";
// A 1x1 PNG: the smallest image an upload can carry.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==",
  "base64",
);

const [setup, scenario, gateway, key] = process.argv.slice(2);
// Every call the client made, as it left: its URL and the proxy's target header (null without one).
const sent = [];

async function recordingFetch(input, init) {
  const request = new Request(input, init);
  sent.push({ method: request.method, url: request.url, target: request.headers.get("x-fal-target-url") });
  return fetch(request);
}

function client() {
  if (setup === "middleware") {
    return createFalClient({
      credentials: key,
      fetch: recordingFetch,
      requestMiddleware: async (request) => ({
        ...request,
        url: request.url
          .replace(/^https:\/\/queue\.fal\.run/, `${gateway}/queue`)
          .replace(/^https:\/\/fal\.run/, `${gateway}/run`)
          .replace(/^https:\/\/rest\.fal\.ai/, `${gateway}/rest`),
      }),
    });
  }
  if (setup === "proxy") {
    return createFalClient({
      credentials: key,
      fetch: recordingFetch,
      proxyUrl: { url: `${gateway}/api/fal/proxy`, when: "always" },
    });
  }
  throw new Error(`unknown set-up ${setup}`);
}

const fal = client();

const scenarios = {
  async subscribe_with_logs() {
    const updates = [];
    const result = await fal.subscribe(T2V, {
      input: { prompt: "a red fox in snow", seed: 7 },
      logs: true,
      pollInterval: 100,
      onQueueUpdate: (update) => updates.push({ status: update.status, logs: update.logs ?? null }),
    });
    return { result: result.data, requestId: result.requestId, updates };
  },

  async queue() {
    const { request_id: requestId } = await fal.queue.submit(T2V, { input: { prompt: "a fox", seed: 11 } });
    const first = await fal.queue.status(T2V, { requestId, logs: true });
    const statuses = [first.status];
    let status = first;
    while (status.status !== "COMPLETED") {
      await new Promise((resolve) => setTimeout(resolve, 100));
      status = await fal.queue.status(T2V, { requestId, logs: true });
      statuses.push(status.status);
    }
    const result = await fal.queue.result(T2V, { requestId });
    return { requestId, statuses, finalLogs: status.logs, result: result.data, resultRequestId: result.requestId };
  },

  async validation_error() {
    try {
      await fal.run(T2V, { input: { prompt: "a fox", duration: "3" } });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return { name: error.name, status: error.status, body: error.body };
    }
    throw new Error("the invalid request was accepted");
  },

  // A submit the gateway cannot say was accepted or not (504 upstream_submit_unknown), and a /run that outlived the
  // gateway's run timeout (504 request_timeout): a re-send would be a second, separately paid job.
  async submit_unknown() {
    return apiError(() => fal.queue.submit(T2V, { input: { prompt: "a fox", seed: 21 } }));
  },

  async run_timeout() {
    return apiError(() => fal.run(T2V, { input: { prompt: "a slow fox", seed: 22 } }));
  },

  async upload() {
    const url = await fal.storage.upload(new Blob([PNG], { type: "image/png" }));
    const result = await fal.subscribe(I2V, {
      input: { prompt: "the pixel comes alive", image_url: url },
      pollInterval: 100,
    });
    return { url, result: result.data };
  },
};

async function apiError(call) {
  try {
    await call();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return { status: error.status, body: error.body, timeoutType: error.timeoutType ?? null };
  }
  throw new Error("the call succeeded");
}

const run = scenarios[scenario];
if (run === undefined) throw new Error(`unknown scenario ${scenario}`);
const seen = await run();
console.log(JSON.stringify({ ...seen, sent }));

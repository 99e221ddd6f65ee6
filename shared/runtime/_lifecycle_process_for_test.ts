/**
 * @module
 * A process for `lifecycle_process_test.ts`: a service app under a lifecycle that handles SIGINT/SIGTERM.
 * Arguments: grace ms, drain delay ms, and `hang` for a closer that never finishes. Prints `port <n>`.
 */
import { createLifecycle } from "./lifecycle.ts";
import { createServiceApp } from "./service_app.ts";

// `deno test` loads this file too (its name ends in _test.ts): only `deno run` starts the process.
if (import.meta.main) {
  const [graceMs, drainDelayMs, closer] = Deno.args;
  const lifecycle = createLifecycle({
    graceMs: Number(graceMs),
    drainDelayMs: Number(drainDelayMs),
    handleSignals: true,
  });
  if (closer === "hang") lifecycle.onStop("consumer that never leaves", () => new Promise(() => {}));
  const app = createServiceApp({ name: "test-east", checks: {} });
  const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "test-east" });
  console.log(`port ${port}`);
}

/**
 * @module
 * Runs {@linkcode startEcommerceBackground} in a worker thread of the deployable (real services only: see
 * `background.ts`). The thread makes its own ports (its own Postgres pool, Redis, Kafka and MQTT clients,
 * named `<process>-background`) from the process's config, so nothing but small messages cross threads:
 * `start` → `ready` | `failed`, `nudge` (the relay), `stop` → `stopped`. A thread that dies ends the
 * process (its supervisor restarts it): a relay or consumer that silently stopped would lose no data but
 * would stall every event behind it.
 */
import type { Config, Region } from "../../shared/config/config.ts";
import { log } from "../../shared/observability/mod.ts";
import { type Lifecycle, withTimeout } from "../../shared/runtime/mod.ts";
import type { EcommerceBackground } from "./background.ts";

/** Bound on the thread's start: joins of its consumer groups and the sensor bridge's MQTT session. */
const START_TIMEOUT_MS = 60_000;

/** What the main thread sends. */
export type ToBackground =
  | { readonly type: "start"; readonly config: Config; readonly region: Region; readonly name: string }
  | { readonly type: "nudge" }
  | { readonly type: "stop" };

/** What the thread answers. */
export type FromBackground =
  | { readonly type: "ready" }
  | { readonly type: "failed"; readonly error: string }
  | { readonly type: "stopped" };

export interface BackgroundThreadOptions {
  readonly config: Config;
  readonly region: Region;
  readonly name: string;
  /** The process's lifecycle: stopping it stops the thread (after the servers drained). */
  readonly lifecycle: Lifecycle;
}

/** Starts the background thread and resolves once its work runs; rejects (thread ended) when it cannot start. */
export async function startBackgroundThread(options: BackgroundThreadOptions): Promise<EcommerceBackground> {
  const { config, region, name, lifecycle } = options;
  const worker = new Worker(new URL("./background_worker.ts", import.meta.url).href, {
    type: "module",
    name: `${name} background`,
  });
  let stopping = false;
  let markStopped: () => void = () => {};
  const stopped = new Promise<void>((resolve) => markStopped = resolve);
  const started = new Promise<void>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<FromBackground>) => {
      const message = event.data;
      if (message.type === "ready") resolve();
      else if (message.type === "failed") reject(new Error(`Background thread could not start: ${message.error}`));
      else if (message.type === "stopped") markStopped();
    };
    worker.onerror = (event) => {
      event.preventDefault();
      const error = new Error(`Background thread crashed: ${event.message}`);
      reject(error);
      markStopped();
      if (stopping) return;
      stopping = true;
      log.error("background thread crashed; stopping the process so its supervisor restarts it", {
        error: event.message,
      });
      lifecycle.stop("background thread crashed").finally(() => Deno.exit(1));
    };
  });
  worker.postMessage({ type: "start", config, region, name } satisfies ToBackground);
  try {
    await withTimeout(started, START_TIMEOUT_MS, "Background thread start");
  } catch (error) {
    stopping = true;
    worker.terminate();
    throw error;
  }
  lifecycle.onStop(`${name} background thread`, async () => {
    stopping = true;
    worker.postMessage({ type: "stop" } satisfies ToBackground);
    // The thread's own lifecycle bounds its closers by the same grace period; this bounds the wait for it.
    await withTimeout(stopped, config.BV_SHUTDOWN_GRACE_MS, "Background thread stop").catch(() => {});
    worker.terminate();
  });
  // Several commits in one turn of the event loop need one wake-up of the relay.
  let nudgeQueued = false;
  return {
    nudgeOutbox() {
      if (nudgeQueued || stopping) return;
      nudgeQueued = true;
      queueMicrotask(() => {
        nudgeQueued = false;
        if (!stopping) worker.postMessage({ type: "nudge" } satisfies ToBackground);
      });
    },
  };
}

/**
 * @module
 * Entry point of the e-commerce background thread (`background_thread.ts`): builds this thread's ports on
 * the real services and runs {@linkcode startEcommerceBackground} until the main thread says stop.
 */
import { log, setLogService } from "../../shared/observability/mod.ts";
import { createLifecycle, type Lifecycle } from "../../shared/runtime/mod.ts";
import { realRegionPorts } from "../wiring/region_ports.ts";
import { type EcommerceBackground, startEcommerceBackgroundOn } from "./background.ts";
import type { FromBackground, ToBackground } from "./background_thread.ts";

let background: EcommerceBackground | undefined;
let lifecycle: Lifecycle | undefined;

/** The worker's global scope, typed for the two members used (the lib is the window one here). */
const scope = globalThis as unknown as {
  onmessage: (event: MessageEvent<ToBackground>) => void;
  postMessage(message: FromBackground): void;
};
const answer = (message: FromBackground) => scope.postMessage(message);

scope.onmessage = async (event: MessageEvent<ToBackground>) => {
  const message = event.data;
  if (message.type === "nudge") {
    background?.nudgeOutbox();
  } else if (message.type === "start") {
    const { config, region, name } = message;
    setLogService(name);
    lifecycle = createLifecycle({ graceMs: config.BV_SHUTDOWN_GRACE_MS, handleSignals: false });
    const ports = realRegionPorts(config, region, `${name}-background`);
    lifecycle.onStop("background ports", () => ports.close());
    try {
      background = await startEcommerceBackgroundOn(ports, { config, region, name, lifecycle });
      log.info("background thread started", { thread: "background" });
      answer({ type: "ready" });
    } catch (error) {
      log.error("background thread failed to start", { error: String(error), stack: (error as Error).stack });
      await lifecycle.stop("start failure");
      answer({ type: "failed", error: String(error) });
    }
  } else if (message.type === "stop") {
    await lifecycle?.stop("the process is stopping");
    answer({ type: "stopped" });
  }
};

/**
 * @module
 * Graceful shutdown. On SIGINT/SIGTERM a process stops accepting (readiness red, servers shut down and
 * drain in-flight requests), then runs its closers in reverse order of registration (consumers commit and
 * leave, producers flush, pools close), all bounded by a grace period after which it exits anyway.
 */
import type { Hono } from "hono";
import { log } from "../observability/mod.ts";
import { markDraining } from "./service_app.ts";

type Closer = { readonly name: string; readonly close: () => Promise<void> };

export interface Lifecycle {
  /** Serves `app` on `port`; the server is shut down (drained) first on stop. */
  serve(app: Hono, options: { readonly port: number; readonly hostname: string; readonly name: string }): void;
  /** Registers something to close on stop; closed in reverse order of registration. */
  onStop(name: string, close: () => Promise<void>): void;
  /** Stops everything; resolves when done (or when the grace period ran out). */
  stop(reason: string): Promise<void>;
  /** Resolves once `stop` has finished. */
  readonly stopped: Promise<void>;
}

/** Creates the lifecycle of this process; with `handleSignals` it stops and exits on SIGINT/SIGTERM. */
export function createLifecycle(options: { readonly graceMs: number; readonly handleSignals: boolean }): Lifecycle {
  const servers: { name: string; app: Hono; server: Deno.HttpServer }[] = [];
  const closers: Closer[] = [];
  let stopping: Promise<void> | undefined;
  let markStopped: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));

  async function stopAll(reason: string): Promise<void> {
    log.info("shutting down", { reason, servers: servers.length, closers: closers.length });
    for (const s of servers) markDraining(s.app);
    await Promise.allSettled(servers.map((s) => s.server.shutdown()));
    for (const closer of [...closers].reverse()) {
      try {
        await closer.close();
      } catch (error) {
        log.warn("close failed", { what: closer.name, error: String(error) });
      }
    }
  }

  const lifecycle: Lifecycle = {
    serve(app, { port, hostname, name }) {
      const server = Deno.serve({ port, hostname, onListen: () => {} }, app.fetch);
      servers.push({ name, app, server });
      log.info("listening", { name, url: `http://${hostname}:${port}` });
    },
    onStop(name, close) {
      closers.push({ name, close });
    },
    stop(reason) {
      stopping ??= (async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const grace = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            log.warn("grace period over; closing anyway", { graceMs: options.graceMs });
            resolve();
          }, options.graceMs);
        });
        await Promise.race([stopAll(reason), grace]);
        clearTimeout(timer);
        log.info("stopped", { reason });
        markStopped();
      })();
      return stopping;
    },
    stopped,
  };

  if (options.handleSignals) {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => {
        lifecycle.stop(signal).then(() => Deno.exit(0));
      });
    }
  }
  return lifecycle;
}

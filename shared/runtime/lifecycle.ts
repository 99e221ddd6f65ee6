/**
 * @module
 * Graceful shutdown, in three steps bounded together by one grace period (from the signal to the exit):
 *
 * 1. Drain delay: readiness turns red and everything is still served for `drainDelayMs`, so the edge's
 *    health probes see the 503 and take this process out before it stops accepting (the preStop sleep).
 * 2. Server drain: the apps' shutdown signal ends long-lived streams (SSE), then the servers stop accepting
 *    and finish their open responses, for at most half of the time left.
 * 3. Closers, always, whatever the drain did: in reverse order of registration (consumers commit and leave,
 *    producers flush, pools close), each bounded by the time left; what is left when it runs out is skipped.
 *
 * `stop` resolves with what happened; the signal handlers exit 0 when everything finished, 1 when the grace
 * period ran out first (a supervisor can tell an unclean stop).
 */
import type { Hono } from "hono";
import { log } from "../observability/mod.ts";
import { markDraining, markShuttingDown } from "./service_app.ts";

/**
 * The time a region's ports (SQL pools, PGlite, cache, event log) keep for their close: a PGlite flush or a pool
 * ending its connections takes well under a second here; the rest of the grace goes to the closers before them.
 */
export const PORTS_CLOSE_RESERVE_MS = 1_000;

type Closer = { readonly name: string; readonly close: () => Promise<void>; readonly reserveMs: number };

/** Options of {@linkcode Lifecycle.onStop}. */
export interface OnStopOptions {
  /**
   * Time kept for this closer out of the grace period: closers that run before it (registered after it) are cut
   * short so that this much is still left when its turn comes. For what must close cleanly whatever else hangs
   * (a database that flushes its files, a pool). @default 0
   */
  readonly reserveMs?: number;
}

export interface LifecycleOptions {
  /** Bound on the whole stop, from the signal to the exit: drain delay, server drain and closers. */
  readonly graceMs: number;
  /**
   * How long the servers keep serving with readiness red before they stop accepting. Capped at half of
   * `graceMs`, so the drain and the closers always keep the other half. Not waited when nothing is served.
   * @default 0
   */
  readonly drainDelayMs?: number;
  /** Stops on SIGINT/SIGTERM and exits with the outcome (0: everything finished, 1: the grace ran out). */
  readonly handleSignals: boolean;
}

export interface StopOptions {
  /** Skips the drain delay, or what is left of it when a stop is already waiting it out. @default false */
  readonly skipDrainDelay?: boolean;
}

/** What a stop did; closer names are in the order the closers ran. */
export interface StopOutcome {
  /** False when the grace period ran out with work unfinished (a server or a closer): exit non-zero. */
  readonly completed: boolean;
  /** Every server finished its open responses. */
  readonly serversDrained: boolean;
  readonly closed: readonly string[];
  /** Closers that threw (logged); they are done, so they do not make the stop incomplete. */
  readonly failed: readonly string[];
  /** Closers still running when their share of the grace period ran out. */
  readonly timedOut: readonly string[];
  /** Closers never started because no time was left. */
  readonly skipped: readonly string[];
}

export interface Lifecycle {
  /** Serves `app` on `port` (0: any free port); returns the address it listens on. */
  serve(app: Hono, options: { readonly port: number; readonly hostname: string; readonly name: string }): Deno.NetAddr;
  /** Registers something to close on stop; closed in reverse order of registration. */
  onStop(name: string, close: () => Promise<void>, options?: OnStopOptions): void;
  /** Stops everything; resolves within the grace period with what happened. Later calls share the first stop. */
  stop(reason: string, options?: StopOptions): Promise<StopOutcome>;
  /** Resolves once `stop` has finished. */
  readonly stopped: Promise<void>;
  /**
   * Aborts when the drain delay is over, just before the servers stop accepting: what serves long-lived
   * streams outside a service app (the edge's flash-sale fan-out, the ingress's proxied SSE) ends them on it,
   * or the drain would wait on them until the grace ran out.
   */
  readonly shuttingDown: AbortSignal;
}

type Settled = "done" | "failed" | "timed out";

/** Creates the lifecycle of this process; with `handleSignals` it stops and exits on SIGINT/SIGTERM. */
export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const { graceMs } = options;
  if (!(Number.isSafeInteger(graceMs) && graceMs > 0)) {
    throw new RangeError(`createLifecycle() graceMs must be a positive integer, got ${graceMs}`);
  }
  const drainDelayMsRequested = options.drainDelayMs ?? 0;
  if (!(Number.isSafeInteger(drainDelayMsRequested) && drainDelayMsRequested >= 0)) {
    throw new RangeError(`createLifecycle() drainDelayMs must be a non-negative integer, got ${drainDelayMsRequested}`);
  }
  // A shortened grace period (the DR drill and the bench use 3 s) keeps a delay that still fits in it.
  const drainDelayMs = Math.min(drainDelayMsRequested, Math.floor(graceMs / 2));
  const servers: { name: string; app: Hono; server: Deno.HttpServer }[] = [];
  const closers: Closer[] = [];
  const hurry = new AbortController();
  const shuttingDown = new AbortController();
  let stopping: Promise<StopOutcome> | undefined;
  let markStopped: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));

  async function stopAll(reason: string): Promise<StopOutcome> {
    const startedMs = performance.now();
    const deadlineMs = startedMs + graceMs;
    const leftMs = () => Math.max(0, Math.floor(deadlineMs - performance.now()));
    const waitsDelay = servers.length > 0 && drainDelayMs > 0 && !hurry.signal.aborted;
    log.info("shutting down", {
      reason,
      servers: servers.length,
      closers: closers.length,
      graceMs,
      drainDelayMs: waitsDelay ? drainDelayMs : 0,
    });
    for (const s of servers) markDraining(s.app);
    if (waitsDelay) await sleep(drainDelayMs, hurry.signal);

    for (const s of servers) markShuttingDown(s.app);
    shuttingDown.abort();
    const drained = Promise.allSettled(servers.map((s) => s.server.shutdown()));
    const serverShareMs = Math.floor(leftMs() / 2);
    let serversDrained = (await settleWithin(() => drained.then(() => {}), serverShareMs)) === "done";
    if (!serversDrained) {
      log.warn("servers still have open responses; running the closers anyway", { waitedMs: serverShareMs });
    }

    const closed: string[] = [], failed: string[] = [], timedOut: string[] = [], skipped: string[] = [];
    const order = [...closers].reverse();
    for (const [index, closer] of order.entries()) {
      // What the closers after this one reserved stays theirs, so a hanging consumer cannot starve the pools.
      const reservedAfterMs = order.slice(index + 1).reduce((sum, later) => sum + later.reserveMs, 0);
      const budgetMs = Math.max(0, leftMs() - reservedAfterMs);
      if (budgetMs === 0) {
        skipped.push(closer.name);
        continue;
      }
      const settled = await settleWithin(closer.close, budgetMs, (error) => {
        log.warn("close failed", { what: closer.name, error: String(error) });
      });
      if (settled === "done") closed.push(closer.name);
      else if (settled === "failed") failed.push(closer.name);
      else {
        timedOut.push(closer.name);
        log.warn("close timed out", { what: closer.name, waitedMs: budgetMs });
      }
    }
    // The closers end what ignored the shutdown signal (a hub's streams), so a late drain may finish now.
    if (!serversDrained) serversDrained = (await settleWithin(() => drained.then(() => {}), leftMs())) === "done";

    const completed = serversDrained && timedOut.length === 0 && skipped.length === 0;
    const outcome: StopOutcome = { completed, serversDrained, closed, failed, timedOut, skipped };
    const fields = { reason, ms: Math.round(performance.now() - startedMs), ...outcome };
    if (completed) log.info("stopped", fields);
    else log.warn("grace period over with work unfinished; stopped anyway", fields);
    return outcome;
  }

  const lifecycle: Lifecycle = {
    serve(app, { port, hostname, name }) {
      const server = Deno.serve({ port, hostname, onListen: () => {} }, app.fetch);
      servers.push({ name, app, server });
      log.info("listening", { name, url: `http://${hostname}:${server.addr.port}` });
      return server.addr;
    },
    onStop(name, close, onStopOptions) {
      const reserveMs = onStopOptions?.reserveMs ?? 0;
      if (!(Number.isSafeInteger(reserveMs) && reserveMs >= 0)) {
        throw new RangeError(`onStop() reserveMs must be a non-negative integer, got ${reserveMs}`);
      }
      closers.push({ name, close, reserveMs });
    },
    stop(reason, stopOptions = {}) {
      if (stopOptions.skipDrainDelay) hurry.abort();
      stopping ??= stopAll(reason).finally(() => markStopped());
      return stopping;
    },
    stopped,
    shuttingDown: shuttingDown.signal,
  };

  if (options.handleSignals) {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => {
        // SIGINT is a Ctrl-C in a terminal: `deno task start` (the edge is in the same process) or
        // `start:infra` (the terminal signals every deployable, ingresses and edge included, at once). The
        // whole platform is going away, so nothing is left to route around this process, and waiting would
        // only make every dev restart slower. Supervisors and orchestrators (start:infra's own stop,
        // Kubernetes, systemd, docker stop) send SIGTERM, which waits the delay. A second signal hurries too.
        const skipDrainDelay = signal === "SIGINT" || stopping !== undefined;
        lifecycle.stop(signal, { skipDrainDelay }).then((outcome) => Deno.exit(outcome.completed ? 0 : 1));
      });
    }
  }
  return lifecycle;
}

/** Waits `ms`, or less if `signal` aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Runs `work` and says how it ended within `timeoutMs`; it keeps running after a timeout (nothing can stop it). */
function settleWithin(
  work: () => Promise<void>,
  timeoutMs: number,
  onError: (error: unknown) => void = () => {},
): Promise<Settled> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Settled>((resolve) => timer = setTimeout(() => resolve("timed out"), timeoutMs));
  const settled = Promise.resolve().then(work).then(
    (): Settled => "done",
    (error): Settled => {
      onError(error);
      return "failed";
    },
  );
  return Promise.race([settled, timeout]).finally(() => clearTimeout(timer));
}

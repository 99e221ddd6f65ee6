/**
 * @module
 * A steady open-loop request stream for `edge_failover`: one request every `1000 / ratePerSec` ms whatever
 * the answers do (a stalled region must not slow the arrivals down, or the gap would be undercounted), each
 * bounded by its own timeout. Every completion is kept with its times and the region that answered, so the
 * scenario can ask "first success from another region after the kill" and "failures in this window".
 */

export interface Outcome {
  readonly sentMs: number;
  readonly doneMs: number;
  /** The region that answered; undefined when the request failed (error, timeout, non-200). */
  readonly region: string | undefined;
}

export interface Load {
  /** Completions so far, in completion order. */
  readonly outcomes: readonly Outcome[];
  /** Arrivals not started because `maxInFlight` requests were outstanding. */
  readonly dropped: () => number;
  /** The first success after `afterMs` whose region satisfies `accept`, waiting up to `timeoutMs`. */
  firstSuccess(afterMs: number, accept: (region: string) => boolean, timeoutMs: number): Promise<Outcome | undefined>;
  /** Failed requests that completed in [fromMs, toMs). */
  failedBetween(fromMs: number, toMs: number): number;
  /** Stops the arrivals and waits for the requests in flight. */
  stop(): Promise<void>;
}

/** One request: resolves with the answering region, throws on failure. */
export type Send = (signal: AbortSignal) => Promise<string>;

const POLL_MS = 2;
/** Completions kept (200/s for over 3 minutes); later ones are counted, not kept. */
const OUTCOMES_MAX = 40_000;

export function startLoad(send: Send, options: { ratePerSec: number; timeoutMs: number; maxInFlight: number }): Load {
  const intervalMs = 1000 / options.ratePerSec;
  const outcomes: Outcome[] = [];
  const inFlight = new Set<Promise<void>>();
  let dropped = 0;
  let stopped = false;
  const startMs = performance.now();
  let next = 0;

  const fire = () => {
    const sentMs = performance.now();
    const work = send(AbortSignal.timeout(options.timeoutMs)).then(
      (region) => region,
      () => undefined,
    ).then((region) => {
      if (outcomes.length < OUTCOMES_MAX) outcomes.push({ sentMs, doneMs: performance.now(), region });
    });
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  };
  // Drift-corrected: every slot that is due fires, so a late timer catches up instead of thinning the stream.
  const tick = () => {
    if (stopped) return;
    const now = performance.now();
    while (startMs + next * intervalMs <= now) {
      next++;
      if (inFlight.size >= options.maxInFlight) dropped++;
      else fire();
    }
    setTimeout(tick, Math.max(0, startMs + next * intervalMs - performance.now()));
  };
  tick();

  return {
    outcomes,
    dropped: () => dropped,
    async firstSuccess(afterMs, accept, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      // Outcomes are kept in completion order, so those done after `afterMs` are a suffix.
      let scanned = outcomes.length;
      while (scanned > 0 && outcomes[scanned - 1].doneMs >= afterMs) scanned--;
      for (;;) {
        for (; scanned < outcomes.length; scanned++) {
          const o = outcomes[scanned];
          if (o.doneMs >= afterMs && o.region !== undefined && accept(o.region)) return o;
        }
        if (performance.now() > deadline) return undefined;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    },
    failedBetween: (fromMs, toMs) =>
      outcomes.filter((o) => o.region === undefined && o.doneMs >= fromMs && o.doneMs < toMs).length,
    async stop() {
      stopped = true;
      await Promise.allSettled([...inFlight]);
    },
  };
}

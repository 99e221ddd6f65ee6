/**
 * @module
 * GSLB at the edge: the health and measured latency of each region, and the choice of a region per
 * request. Pure state fed by the health probes (`recordProbe`) and by failed proxy connections
 * (`recordUnreachable`), so the rules are tested without timers.
 *
 * Health: a probe that times out or fails to connect counts; `unhealthyAfterFailures` in a row take the
 * region out (one lost probe is not an outage). A region that answers its `/readyz` with not-ready, or that a
 * live request could not connect to, is out at once: it said so, or a client just paid for it. A region
 * comes back after `healthyAfterSuccesses` good probes in a row, or after one when no region is healthy
 * (anything beats a 503).
 *
 * Latency: an EWMA of successful probe round trips (`latencyEwmaAlpha` for the newest sample). It steers
 * traffic only once both regions compared have `latencySamplesMin` samples: right after start one cold
 * probe (a new connection, a JIT-cold handler) says little, and preference order is the better guess.
 *
 * With no region healthy, `choose` still names one (panic routing, see `panicChoice`): a 503 is certain, a
 * request to a region that answered not-ready a second ago may well succeed.
 *
 * Choice: without a hint, the healthy region with the lowest EWMA, where a region earlier in preference order
 * keeps the traffic unless a later one is faster by more than `latencyToleranceMs` (so loopback jitter of
 * a few milliseconds (a GC pause in one probe) does not flip every request between east and west). With a hint
 * (`x-bv-region`), that region when healthy, unless it is much slower than the fastest healthy one: both
 * more than `hintSlowFactor` times its EWMA and more than `hintSlowMarginMs` above it. The two bounds keep
 * a hint honoured for small absolute differences (1 ms vs 3 ms on loopback) and for proportionally small
 * ones, while a region that has become far slower is not sent traffic just because a client named it.
 */

export interface RegionRouterOptions {
  /** Consecutive failed probes (timeout, connection refused) that take a region out. @default 2 */
  readonly unhealthyAfterFailures?: number;
  /** Consecutive good probes that bring a region back. @default 2 */
  readonly healthyAfterSuccesses?: number;
  /** Probes a region needs before its latency can move traffic. @default 3 */
  readonly latencySamplesMin?: number;
  /** Weight of the newest latency sample in the EWMA, in (0, 1]. @default 0.3 */
  readonly latencyEwmaAlpha?: number;
  /** How much faster a later region must be to win over an earlier one without a hint. @default 10 */
  readonly latencyToleranceMs?: number;
  /** A hinted region is overridden only when slower than this many times the fastest... @default 3 */
  readonly hintSlowFactor?: number;
  /** ...and more than this many milliseconds slower. @default 50 */
  readonly hintSlowMarginMs?: number;
}

/** What one probe saw: ready, answered not-ready, or failed (timeout, refused). */
export type ProbeOutcome =
  | { readonly kind: "ready"; readonly latencyMs: number }
  | { readonly kind: "not-ready"; readonly detail: string }
  | { readonly kind: "failed"; readonly detail: string };

export interface RegionHealth {
  readonly name: string;
  readonly healthy: boolean;
  /** EWMA of successful probe round trips (0 before the first). */
  readonly latencyMs: number;
  readonly lastError?: string;
}

export interface RegionRouter {
  recordProbe(name: string, outcome: ProbeOutcome): void;
  /** A live request could not connect: the region is out until it passes its probes again. */
  recordUnreachable(name: string, detail: string): void;
  /** The region for a request with `hint`, or undefined when none is healthy; `exclude` skips one already tried. */
  choose(hint: string | null | undefined, exclude?: string): string | undefined;
  isHealthy(name: string): boolean;
  health(): readonly RegionHealth[];
}

interface State {
  readonly name: string;
  healthy: boolean;
  latencyMs: number;
  samples: number;
  failures: number;
  successes: number;
  lastError?: string;
}

function positive(name: string, value: number, integer: boolean): number {
  if (!(value > 0) || (integer && !Number.isSafeInteger(value))) {
    throw new RangeError(`createRegionRouter() ${name} must be a positive ${integer ? "integer" : "number"}`);
  }
  return value;
}

/**
 * A router over `names` in preference order. Every region starts healthy (unknown until probed: optimistic,
 * so the first request after start is not refused) with no latency measured.
 */
export function createRegionRouter(
  names: readonly string[],
  options: RegionRouterOptions = {},
  onChange?: (name: string, healthy: boolean) => void,
): RegionRouter {
  const failuresMax = positive("unhealthyAfterFailures", options.unhealthyAfterFailures ?? 2, true);
  const successesMin = positive("healthyAfterSuccesses", options.healthyAfterSuccesses ?? 2, true);
  const alpha = positive("latencyEwmaAlpha", options.latencyEwmaAlpha ?? 0.3, false);
  const slowFactor = positive("hintSlowFactor", options.hintSlowFactor ?? 3, false);
  const slowMarginMs = positive("hintSlowMarginMs", options.hintSlowMarginMs ?? 50, false);
  const toleranceMs = options.latencyToleranceMs ?? 10;
  const samplesMin = positive("latencySamplesMin", options.latencySamplesMin ?? 3, true);
  if (!(toleranceMs >= 0)) throw new RangeError("createRegionRouter() latencyToleranceMs must be 0 or more");
  if (alpha > 1) throw new RangeError("createRegionRouter() latencyEwmaAlpha must be at most 1");
  const states: State[] = names.map((name) => ({
    name,
    healthy: true,
    latencyMs: 0,
    samples: 0,
    failures: 0,
    successes: 0,
  }));
  const byName = new Map(states.map((state) => [state.name, state]));

  function stateOf(name: string): State {
    const state = byName.get(name);
    if (state === undefined) throw new RangeError(`Unknown region "${name}"; known: ${names.join(", ")}`);
    return state;
  }

  function set(state: State, healthy: boolean): void {
    if (state.healthy === healthy) return;
    state.healthy = healthy;
    onChange?.(state.name, healthy);
  }

  function comparable(a: State, b: State): boolean {
    return a.samples >= samplesMin && b.samples >= samplesMin;
  }

  function fastest(exclude: string | undefined): State | undefined {
    let best: State | undefined;
    for (const state of states) {
      if (!state.healthy || state.name === exclude) continue;
      if (best === undefined || (comparable(state, best) && state.latencyMs + toleranceMs < best.latencyMs)) {
        best = state;
      }
    }
    return best;
  }

  /**
   * Panic routing (Envoy's panic threshold, at 0 healthy): with no region healthy a request is still sent —
   * to the hinted region, else the first in preference order — because health is a few seconds old and
   * readiness is strict (one not-ready deployable takes its whole region out), so the request may well
   * succeed, while a 503 certainly fails it. A region that cannot be reached still answers 503 through the
   * proxy, and `exclude` still moves a retry to the other region.
   */
  function panicChoice(hint: string | null | undefined, exclude: string | undefined): string | undefined {
    if (hint && hint !== exclude && byName.has(hint)) return hint;
    return states.find((state) => state.name !== exclude)?.name;
  }

  return {
    recordProbe(name, outcome) {
      const state = stateOf(name);
      if (outcome.kind === "ready") {
        state.latencyMs = state.samples === 0
          ? outcome.latencyMs
          : alpha * outcome.latencyMs + (1 - alpha) * state.latencyMs;
        state.samples++;
        state.failures = 0;
        state.successes++;
        state.lastError = undefined;
        const alone = !states.some((s) => s.healthy);
        if (!state.healthy && (state.successes >= successesMin || alone)) set(state, true);
        return;
      }
      state.successes = 0;
      state.failures++;
      state.lastError = outcome.detail;
      if (outcome.kind === "not-ready" || state.failures >= failuresMax) set(state, false);
    },
    recordUnreachable(name, detail) {
      const state = stateOf(name);
      state.successes = 0;
      state.lastError = detail;
      set(state, false);
    },
    choose(hint, exclude) {
      const best = fastest(exclude);
      if (best === undefined) return panicChoice(hint, exclude);
      if (!hint || hint === best.name) return best.name;
      const hinted = byName.get(hint);
      if (hinted === undefined || !hinted.healthy || hinted.name === exclude) return best.name;
      const muchSlower = comparable(hinted, best) && hinted.latencyMs > best.latencyMs * slowFactor &&
        hinted.latencyMs - best.latencyMs > slowMarginMs;
      return muchSlower ? best.name : hinted.name;
    },
    isHealthy: (name) => stateOf(name).healthy,
    health: () =>
      states.map((s) => ({
        name: s.name,
        healthy: s.healthy,
        latencyMs: Math.round(s.latencyMs * 100) / 100,
        ...(s.lastError === undefined ? {} : { lastError: s.lastError }),
      })),
  };
}

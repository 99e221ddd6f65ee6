/**
 * @module
 * Rebuilds the revenue projection from the order topics and compares it with the live one. The replay
 * reads from the earliest offset under a fresh consumer group, applies every record with the same
 * decoding (`revenue_events.ts`) and rules (`revenue_rules.ts`) as the live consumer, but keeps its state
 * in memory instead of SQL — so parity also checks the live store. It never writes: no table, no
 * dead-letter record (a record the live consumer would dead-letter is only counted here).
 *
 * The log has no end, so the replay stops once it has applied at least as many events as the live
 * projection has processed (`processed_events`) and then saw nothing new for `quietMs`. Run it when the
 * live consumer has caught up; otherwise the windows it has not reached yet show as "differs". It reads the
 * topics the live projection reads (`revenue_sources.ts`): replicated, the other regions' MirrorMaker copies
 * too, so parity compares like with like.
 */
import type { EventLog, Sql, Subscription } from "../../../shared/ports/mod.ts";
import type { WriterRoleReader } from "../orders/writer/mod.ts";
import { decimalTextOfUnits } from "./_decimal.ts";
import { decodeRevenueRecord, REVENUE_TOPICS, type RevenueScope, type RevenueTopics } from "./revenue_events.ts";
import { REVENUE_CONSUMER } from "./revenue_projection.ts";
import { revenueSourcesOf, revenueTopicSpecs } from "./revenue_sources.ts";
import { applyRevenueEvent, type OrderRevenueState } from "./revenue_rules.ts";
import { readAllRevenueWindows, type RevenueWindow } from "./revenue_store.ts";

export interface ReplayRevenueOptions {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  /** The region whose projection is rebuilt (standalone, records mirrored in from elsewhere are skipped, as live). */
  readonly region: string;
  /** The local topics; replicated, their copies from the other regions too. @default {@linkcode REVENUE_TOPICS} */
  readonly topics?: RevenueTopics;
  /** As the live projection's. @default the config's `REGIONS` */
  readonly regions?: readonly string[];
  /** As the live projection's. @default a reader of the `order_writer` row */
  readonly writerRole?: WriterRoleReader;
  /** A group that has never committed, so reading starts at the earliest offset. @default a fresh uuid group */
  readonly groupId?: string;
  /** How long nothing new must arrive, once caught up, before the replay ends. @default 2_000 */
  readonly quietMs?: number;
  /** Bound on the whole replay, joining the consumer group included. @default 300_000 */
  readonly timeoutMs?: number;
  /** Bound on distinct events (memory: the replay keeps each event id and each order's state). @default 2_000_000 */
  readonly eventsMax?: number;
  /** Bound on the live windows read back for the comparison. @default 2_000_000 */
  readonly windowsMax?: number;
}

export type ParityVerdict = "equal" | "differs";

/** One (minute, currency) window on either side; a side without the window shows null. */
export interface ParityLine {
  readonly windowStart: string;
  readonly currency: string;
  readonly live: { readonly revenue: string; readonly orders: number } | null;
  readonly replay: { readonly revenue: string; readonly orders: number } | null;
  readonly verdict: ParityVerdict;
}

export interface RevenueParity {
  readonly ok: boolean;
  readonly lines: readonly ParityLine[];
  readonly equal: number;
  readonly differs: number;
  /** Distinct events applied by the replay. */
  readonly eventsApplied: number;
  /** Events the live projection had processed when the replay started. */
  readonly eventsLive: number;
  /** The logical topics replayed (replicated: the other regions' copies too). */
  readonly topics: readonly string[];
  /** Records skipped because they were mirrored in from another region (standalone only). */
  readonly mirroredSkipped: number;
  /** Records that are not valid paid/canceled events (the live consumer dead-letters them). */
  readonly malformed: number;
}

/** Replays the topics from the start and compares the result with `revenue_minute`, window by window. */
export async function replayRevenue(options: ReplayRevenueOptions): Promise<RevenueParity> {
  const quietMs = options.quietMs ?? 2_000;
  const timeoutMs = options.timeoutMs ?? 300_000;
  const eventsMax = options.eventsMax ?? 2_000_000;
  const { sql, region, regions, writerRole } = options;
  // One deadline for the whole replay: joining the group counts too (a coordinator that never answers).
  const deadlineMs = Date.now() + timeoutMs;
  const sources = await revenueSourcesOf({
    sql,
    region,
    regions,
    writerRole,
    topics: options.topics ?? REVENUE_TOPICS,
  });
  const [{ n }] = await options.sql.query<{ n: number }>`
    select count(*)::int as n from processed_events where consumer = ${REVENUE_CONSUMER}`;
  const rebuilt = createRebuild(sources, eventsMax);
  const joinTimeout = () =>
    new Error(
      `The replay's consumer did not join the group within ${timeoutMs} ms; check that the event log and its ` +
        "group coordinator are reachable, or raise the timeout",
    );
  // The live projection made them, but a copy of another region's topic may be missing on a fresh cluster.
  await beforeDeadline(
    options.eventLog.ensureTopics(revenueTopicSpecs(sources)),
    deadlineMs,
    () => new Error(`The replay's topics could not be ensured within ${timeoutMs} ms; check the event log`),
  );
  const subscription: Subscription = await beforeDeadline(
    options.eventLog.subscribe({
      groupId: options.groupId ?? `analytics-revenue-replay.${options.region}.${crypto.randomUUID()}`,
      topics: sources.topics,
      from: "earliest",
      // Never throws: a throwing handler would make the event log dead-letter the record a second time.
      handler: (record) => Promise.resolve(rebuilt.apply(record)),
    }),
    deadlineMs,
    joinTimeout,
    // A member that starts after the deadline is left at once.
    (late) => void late.close().catch(() => {}),
  );
  try {
    await beforeDeadline(subscription.ready, deadlineMs, joinTimeout);
    rebuilt.joined(); // The quiet period counts from the join, however long the join took.
    await waitUntilCaughtUp(rebuilt, { eventsLive: n, quietMs, timeoutMs, deadlineMs });
  } finally {
    await subscription.close();
  }
  const live = await readAllRevenueWindows(options.sql, options.windowsMax ?? 2_000_000);
  return compare(live, rebuilt.windows(), { ...rebuilt.counts(), eventsLive: n, topics: sources.topics });
}

/**
 * Resolves as `promise` does, or rejects with `timeout()` at `deadlineMs`; a value that arrives after the
 * deadline is handed to `late` (to close what nobody will use).
 */
async function beforeDeadline<T>(
  promise: Promise<T>,
  deadlineMs: number,
  timeout: () => Error,
  late?: (value: T) => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(timeout());
    }, Math.max(0, deadlineMs - Date.now()));
  });
  // After the deadline the outcome is nobody's: a late value is handed over, a late failure ignored.
  promise.then((value) => timedOut && late?.(value), () => {});
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

type Rebuild = ReturnType<typeof createRebuild>;

function createRebuild(scope: RevenueScope, eventsMax: number) {
  const seen = new Set<string>();
  const orders = new Map<string, OrderRevenueState>();
  const windows = new Map<string, { windowStart: string; currency: string; units: bigint; orders: number }>();
  let mirroredSkipped = 0;
  let malformed = 0;
  let lastRecordAtMs = Date.now();
  let failure: Error | undefined;
  return {
    apply(record: Parameters<typeof decodeRevenueRecord>[0]): void {
      lastRecordAtMs = Date.now();
      if (failure) return;
      let event;
      try {
        event = decodeRevenueRecord(record, scope);
      } catch {
        malformed++;
        return;
      }
      if (event === null) return void mirroredSkipped++;
      if (seen.has(event.eventId)) return;
      if (seen.size >= eventsMax) {
        failure = new RangeError(`The replay holds ${eventsMax} events at most; raise eventsMax to replay more`);
        return;
      }
      seen.add(event.eventId);
      const outcome = applyRevenueEvent(orders.get(event.orderId) ?? {}, event);
      orders.set(event.orderId, outcome.state);
      for (const delta of outcome.deltas) {
        const windowStart = delta.windowStart.toISOString();
        const key = `${windowStart} ${delta.currency}`;
        const window = windows.get(key) ?? { windowStart, currency: delta.currency, units: 0n, orders: 0 };
        window.units += delta.revenueUnits;
        window.orders += delta.orders;
        windows.set(key, window);
      }
    },
    joined: (): void => void (lastRecordAtMs = Date.now()),
    state: () => ({ applied: seen.size, lastRecordAtMs, failure }),
    counts: () => ({ eventsApplied: seen.size, mirroredSkipped, malformed }),
    windows: (): RevenueWindow[] =>
      [...windows.values()].map((w) => ({
        windowStart: w.windowStart,
        currency: w.currency,
        revenue: decimalTextOfUnits(w.units),
        orders: w.orders,
      })),
  };
}

async function waitUntilCaughtUp(
  rebuilt: Rebuild,
  bounds: {
    readonly eventsLive: number;
    readonly quietMs: number;
    readonly timeoutMs: number;
    readonly deadlineMs: number;
  },
): Promise<void> {
  for (;;) {
    const { applied, lastRecordAtMs, failure } = rebuilt.state();
    if (failure) throw failure;
    if (applied >= bounds.eventsLive && Date.now() - lastRecordAtMs >= bounds.quietMs) return;
    if (Date.now() > bounds.deadlineMs) {
      throw new Error(
        `The replay applied ${applied} of the ${bounds.eventsLive} events the live projection processed within ` +
          `${bounds.timeoutMs} ms; check the topics' retention or raise the timeout`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(50, bounds.quietMs)));
  }
}

function compare(
  live: readonly RevenueWindow[],
  replay: readonly RevenueWindow[],
  counts: Omit<RevenueParity, "ok" | "lines" | "equal" | "differs">,
): RevenueParity {
  // A window netted back to zero is the same as no window (one side may have kept the row, the other not).
  const nonZero = (w: RevenueWindow) => w.orders !== 0 || w.revenue !== "0.00";
  const key = (w: RevenueWindow) => `${w.windowStart} ${w.currency}`;
  const liveByKey = new Map(live.filter(nonZero).map((w) => [key(w), w]));
  const replayByKey = new Map(replay.filter(nonZero).map((w) => [key(w), w]));
  const keys = [...new Set([...liveByKey.keys(), ...replayByKey.keys()])].sort();
  const lines = keys.map((k): ParityLine => {
    const l = liveByKey.get(k);
    const r = replayByKey.get(k);
    const [windowStart, currency] = k.split(" ");
    const equal = l !== undefined && r !== undefined && l.revenue === r.revenue && l.orders === r.orders;
    return {
      windowStart,
      currency,
      live: l ? { revenue: l.revenue, orders: l.orders } : null,
      replay: r ? { revenue: r.revenue, orders: r.orders } : null,
      verdict: equal ? "equal" : "differs",
    };
  });
  const differs = lines.filter((line) => line.verdict === "differs").length;
  return { ok: differs === 0, lines, equal: lines.length - differs, differs, ...counts };
}

/** The report the replay command prints: one line per window (differing ones first), then a summary. */
export function formatParity(parity: RevenueParity, options?: { readonly linesMax?: number }): string {
  const linesMax = options?.linesMax ?? 1_000;
  const side = (s: ParityLine["live"]) => (s ? `${s.revenue}/${s.orders}` : "-");
  const ordered = [...parity.lines].sort((a, b) => a.verdict === b.verdict ? 0 : a.verdict === "differs" ? -1 : 1);
  const shown = ordered.slice(0, linesMax).map((line) =>
    `${line.windowStart} ${line.currency} live=${side(line.live)} replay=${side(line.replay)} ${line.verdict}`
  );
  if (ordered.length > linesMax) shown.push(`… ${ordered.length - linesMax} more windows not shown`);
  shown.push(
    `parity: ${parity.ok ? "OK" : "MISMATCH"} — windows ${parity.lines.length}, equal ${parity.equal}, ` +
      `differs ${parity.differs}; events replayed ${parity.eventsApplied} (live processed ${parity.eventsLive}), ` +
      `mirrored skipped ${parity.mirroredSkipped}, malformed ${parity.malformed}`,
  );
  return shown.join("\n");
}

/**
 * @module
 * Bookkeeping for messages that no handler matches. The broker sends them because the session holds a
 * subscription this process has no handler for: a filter an earlier deploy subscribed to under the same clientId
 * (a persistent session keeps it), or one whose `subscribe()` timed out although the broker took the SUBSCRIBE.
 * This process can never handle them, so the bus acknowledges them once the hold for `subscribe()` is over:
 * left unacknowledged they would force a reconnect after which the broker sends the same message first, and
 * again every cycle. This remembers which subscriptions proved stale, so that their next messages are not held
 * again (each hold stops the connection's traffic), and reports each once, then at most once per interval, never
 * per message.
 */

/** What {@linkcode createUnmatched} needs; the clock is passed in. */
export interface UnmatchedOptions {
  /** Stale subscriptions remembered; beyond this the oldest is forgotten (and may be held and reported again). */
  readonly keysMax: number;
  /** A subscription is reported at most once per this, with the count of its messages since the last report. */
  readonly reportIntervalMs: number;
  /** The clock, in milliseconds. */
  readonly now: () => number;
  /** The session holding the stale subscription, named in reports. */
  readonly clientId: string;
  /** How long a QoS 1 message waits for `subscribe()`, named in reports. */
  readonly holdMs: number;
  /** Receives the reports. */
  readonly onReport: (error: Error) => void;
}

/**
 * The bookkeeping of one bus. A message's subscription is named by its subscription identifiers (MQTT 5; the filter
 * of a stale one cannot be read back from them), else by its topic.
 */
export interface Unmatched {
  /** Whether a message of this subscription already waited a whole hold for `subscribe()` in vain. */
  stale(topic: string, subscriptionIds: readonly number[]): boolean;
  /** A message was acknowledged unhandled, `held` when after the whole hold; reports it when a report is due. */
  acknowledged(topic: string, subscriptionIds: readonly number[], held: boolean): void;
}

interface Entry {
  stale: boolean;
  reportedAtMs: number | undefined;
  /** Messages since the last report. */
  unreported: number;
}

/** Makes the bookkeeping of one bus. */
export function createUnmatched(options: UnmatchedOptions): Unmatched {
  const { keysMax, reportIntervalMs, now } = options;
  if (!Number.isSafeInteger(keysMax) || keysMax < 1) {
    throw new RangeError(`keysMax must be a positive whole number, got ${keysMax}`);
  }
  const entries = new Map<string, Entry>();
  const keyOf = (topic: string, ids: readonly number[]) =>
    ids.length > 0 ? `subscription identifier ${ids.join(", ")}` : `topic "${topic}"`;

  const report = (topic: string, ids: readonly number[], count: number, held: boolean) => {
    const through = ids.length > 0 ? ` (${keyOf(topic, ids)})` : "";
    const since = count > 1 ? `${count} such messages since the last report, ` : "";
    const after = held ? ` after waiting ${options.holdMs} ms for subscribe()` : "";
    options.onReport(
      new Error(
        `No handler for "${topic}"${through}: ${since}acknowledged unhandled${after}; the broker's session for ` +
          `"${options.clientId}" holds a subscription this process does not handle: unsubscribe it, or connect ` +
          `once with a clean session (reported at most every ${reportIntervalMs / 1_000} s per subscription)`,
      ),
    );
  };

  return {
    stale: (topic, ids) => entries.get(keyOf(topic, ids))?.stale ?? false,
    acknowledged(topic, ids, held) {
      const key = keyOf(topic, ids);
      let entry = entries.get(key);
      if (entry === undefined) {
        // Map keeps insertion order: the first key is the oldest.
        if (entries.size >= keysMax) entries.delete(entries.keys().next().value!);
        entry = { stale: false, reportedAtMs: undefined, unreported: 0 };
        entries.set(key, entry);
      }
      entry.stale ||= held;
      entry.unreported++;
      const nowMs = now();
      if (entry.reportedAtMs !== undefined && nowMs - entry.reportedAtMs < reportIntervalMs) return;
      report(topic, ids, entry.unreported, held);
      entry.reportedAtMs = nowMs;
      entry.unreported = 0;
    },
  };
}

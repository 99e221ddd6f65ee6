/**
 * @module
 * What the parts of the event-log contract share: the fixture an adapter hands over, the per-test subscribe
 * that closes what it opened, the bound on every wait, and two small handler helpers.
 */
import type { EventLog, IncomingRecord, SubscribeOptions } from "../event_log.ts";

/** What a contract test needs from the adapter under test. */
export interface EventLogFixture {
  readonly log: EventLog;
  /** A topic name unique to this run; the fixture deletes it (and its dead-letter topic) in `cleanup`. */
  readonly newTopic: (name: string) => string;
  /**
   * Closes `log` and opens another on the same data (data directory, brokers), as a process restart does.
   * Absent for a log that does not outlive its process. `cleanup` closes the newest one.
   */
  readonly reopen?: () => Promise<EventLog>;
  /** Closes the log and removes what the test created. */
  readonly cleanup: () => Promise<void>;
}

/** Longest any single expectation may take; Kafka group joins are the slow part (~1 s each). */
export const WAIT_MS_MAX = 20_000;

/** A handler that appends `pick(record)` to `list`. */
export function collectInto<T>(
  list: T[],
  pick: (record: IncomingRecord) => T,
): (record: IncomingRecord) => Promise<void> {
  return (record) => {
    list.push(pick(record));
    return Promise.resolve();
  };
}

/** A gate a handler can wait on; `open()` lets it through. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => open = resolve);
  return { wait, open };
}

/** Subscribes for one contract test and waits until the subscription is ready; the test closes it at the end. */
export type Subscribe = (options: SubscribeOptions) => Promise<{ close(): Promise<void> }>;

/** Registers one contract test: `body` gets a fresh fixture and a {@linkcode Subscribe} bound to it. */
export type ContractTest = (
  name: string,
  body: (fixture: EventLogFixture, subscribe: Subscribe) => Promise<void>,
) => void;

/**
 * @module
 * Replicates selected topics from one region's event log to another's — the embedded stand-in for Kafka
 * MirrorMaker 2, built on the event-log port only. Loop prevention: every mirrored record carries
 * `bv-origin-region`; a record is never copied into the region it came from, so east ⇄ west mirrors can
 * run both ways at once. Offsets are committed after the copy is acknowledged: at-least-once, and
 * consumers are idempotent by eventId.
 */
import type { EventLog, Subscription } from "../ports/mod.ts";

export const ORIGIN_REGION_HEADER = "bv-origin-region";

export interface MirrorOptions {
  readonly source: EventLog;
  readonly target: EventLog;
  readonly sourceRegion: string;
  readonly targetRegion: string;
  readonly topics: readonly string[];
}

/** Starts mirroring; close the returned subscription to stop. */
export async function startEventMirror(options: MirrorOptions): Promise<Subscription> {
  await options.target.ensureTopics(options.topics.map((name) => ({ name })));
  await options.source.ensureTopics(options.topics.map((name) => ({ name })));
  return options.source.subscribe({
    groupId: `bv-mirror.${options.sourceRegion}-to-${options.targetRegion}`,
    topics: options.topics,
    from: "earliest",
    handler: async (record) => {
      const origin = record.headers[ORIGIN_REGION_HEADER] ?? options.sourceRegion;
      if (origin === options.targetRegion) return;
      await options.target.publish(record.topic, [{
        key: record.key,
        value: record.value,
        headers: { ...record.headers, [ORIGIN_REGION_HEADER]: origin },
      }]);
    },
  });
}

/**
 * @module
 * One partition of the embedded event log and its retention rule. Records keep their offsets for life; the
 * partition remembers its log start (the offset of its oldest retained record, Kafka's "log start offset"),
 * so offsets stay monotonic however many records retention drops. Private to the memory adapter.
 */
import type { StoredRecord } from "./_event_log_store.ts";

/** How much of a partition is kept, like Kafka's `retention.ms` and `retention.bytes` (plus a record count). */
export interface RetentionPolicy {
  /** Records older than this are dropped. */
  readonly ms: number;
  /** Records kept at most per partition. */
  readonly records: number;
  /** Size (see {@linkcode sizeOf}) kept at most per partition. */
  readonly bytes: number;
}

/** What a drop released. */
export interface Dropped {
  readonly records: number;
  readonly bytes: number;
}

/** Compact the slot array once this many dropped slots lead it (and they are at least half of it). */
const DEAD_SLOTS_MIN = 1_024;

/**
 * A record's size for `retention.bytes`: the UTF-16 code units of its key, value and headers. It is what
 * the strings cost on disk for ASCII text; object overhead (a few hundred bytes) is bounded by the count.
 */
export function sizeOf(record: StoredRecord): number {
  let size = record.key.length + record.value.length;
  for (const name in record.headers) size += name.length + record.headers[name].length;
  return size;
}

export class Partition {
  /** Retained records from `#head` on; slots before it were dropped and are released (undefined). */
  #slots: (StoredRecord | undefined)[] = [];
  #head = 0;
  #logStart: number;
  #bytes = 0;

  constructor(logStart = 0, records: readonly StoredRecord[] = []) {
    if (!Number.isSafeInteger(logStart) || logStart < 0) throw new RangeError(`Invalid log start ${logStart}`);
    this.#logStart = logStart;
    this.append(records);
  }

  /** Offset of the oldest retained record (the next offset when none is retained). */
  get logStart(): number {
    return this.#logStart;
  }

  /** The offset the next appended record gets. */
  get end(): number {
    return this.#logStart + this.count;
  }

  get count(): number {
    return this.#slots.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The retained record at `offset`, or undefined below the log start or at/after the end. */
  at(offset: number): StoredRecord | undefined {
    if (offset < this.#logStart || offset >= this.end) return undefined;
    return this.#slots[this.#head + offset - this.#logStart];
  }

  *records(): IterableIterator<StoredRecord> {
    for (let i = this.#head; i < this.#slots.length; i++) yield this.#slots[i]!;
  }

  /** Appends records whose offsets continue the partition (the caller numbers them from `end`). */
  append(records: readonly StoredRecord[]): void {
    for (const record of records) {
      if (record.offset !== this.end) {
        throw new RangeError(`Record offset ${record.offset} does not continue the partition at ${this.end}`);
      }
      this.#slots.push(record);
      this.#bytes += sizeOf(record);
    }
  }

  /** Drops every record below `offset` (at most up to the end) and moves the log start there. */
  dropBefore(offset: number): Dropped {
    let records = 0;
    let bytes = 0;
    while (this.#logStart < offset && this.count > 0) {
      bytes += sizeOf(this.#slots[this.#head]!);
      this.#slots[this.#head++] = undefined;
      this.#logStart++;
      records++;
    }
    this.#bytes -= bytes;
    // Copying the live tail only once the dead head is as long as it keeps drops amortized O(1) per record.
    if (this.#head >= DEAD_SLOTS_MIN && this.#head * 2 >= this.#slots.length) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
    return { records, bytes };
  }

  /**
   * Where the log would start under `policy` at `nowMs` once `incoming` is appended: past every record that
   * is too old or that makes the partition hold too many records or bytes. Walks only the records it drops.
   */
  retainedStart(policy: RetentionPolicy, nowMs: number, incoming: readonly StoredRecord[] = []): number {
    let count = this.count + incoming.length;
    let bytes = this.#bytes;
    for (const record of incoming) bytes += sizeOf(record);
    // Like Kafka, a record goes once it is older than `ms`, not when it is exactly that old.
    const oldestKeptMs = nowMs - policy.ms;
    let start = this.#logStart;
    while (count > 0) {
      const oldest = start < this.end ? this.at(start)! : incoming[start - this.end];
      const expired = oldest.timestampMs < oldestKeptMs;
      if (!expired && count <= policy.records && bytes <= policy.bytes) break;
      count--;
      bytes -= sizeOf(oldest);
      start++;
    }
    return start;
  }
}

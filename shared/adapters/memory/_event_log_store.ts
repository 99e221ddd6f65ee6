/**
 * @module
 * Disk persistence for the embedded event log: one append-only JSON-lines file per topic-partition plus
 * an append-only offsets file, compacted when the log opens and when it grows past a bound. Retention is
 * recorded by appending a log-start marker; a partition file is rewritten (temp file + rename) once what
 * it holds below the log start is as large as what it retains, so disk use stays within about twice the
 * retained records and the rewrites cost O(1) amortized per dropped record. Private to the memory adapter.
 *
 * Layout under `dataDir`:
 *   topics/<topic>/meta.json      {"partitions": 3}
 *   topics/<topic>/<p>.jsonl      {"o":0,"k":"…","v":"…","h":{…},"t":1700000000000} per record, and
 *                                 {"s":1200} when retention moved the log start (records below it are gone)
 *   offsets.jsonl                 {"g":"group","t":"topic","p":0,"o":12} per commit (last line wins)
 */

import { type Dropped, Partition } from "./_partition.ts";

/** A record as the embedded log keeps it. */
export interface StoredRecord {
  readonly offset: number;
  readonly key: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timestampMs: number;
}

/** What a data directory held when it was opened. */
export interface LoadedState {
  readonly topics: Map<string, Partition[]>;
  /** group → `topic\0partition` → next offset to read. */
  readonly offsets: Map<string, Map<string, number>>;
}

/** Rewrite the offsets file once it holds this many lines, so it stays proportional to the live groups. */
const OFFSET_LINES_MAX = 10_000;
/** Lines below the log start a partition file may hold however little it retains, so tiny logs rarely rewrite. */
const GARBAGE_LINES_MIN = 1_000;
/** Bytes below the log start a partition file may hold however little it retains. */
const GARBAGE_BYTES_MIN = 1024 * 1024;

type RecordLine = { o: number; k: string; v: string; h: Record<string, string>; t: number };
type MarkerLine = { s: number };

export function offsetKeyOf(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/**
 * How the store writes and cuts files; a seam so tests can make a write fail halfway (a full disk) without
 * filling one. @internal
 */
export interface StoreFileIo {
  write(file: Deno.FsFile, bytes: Uint8Array): Promise<number>;
  truncate(file: Deno.FsFile, size: number): Promise<void>;
}

const DENO_FILE_IO: StoreFileIo = {
  write: (file, bytes) => file.write(bytes),
  truncate: (file, size) => file.truncate(size),
};

export class EventLogStore {
  readonly #dir: string;
  readonly #fsync: boolean;
  readonly #io: StoreFileIo;
  /**
   * Files whose last append failed and could not be cut back: path → the size they had before it. The next
   * append cuts them first (and fails if it still cannot), so a torn or unacknowledged line never gets a
   * newer line after it.
   */
  readonly #torn = new Map<string, number>();
  #offsetLines = 0;
  /** `topic\0partition` → lines and bytes its file holds that are not retained records (dropped, markers). */
  readonly #garbage = new Map<string, { lines: number; bytes: number }>();

  constructor(dataDir: string, options: { readonly fsync: boolean; readonly io?: StoreFileIo }) {
    this.#dir = dataDir.replace(/\/+$/, "");
    this.#fsync = options.fsync;
    this.#io = options.io ?? DENO_FILE_IO;
  }

  /** Reads everything back; a torn last line (a crash mid-write) is dropped, as it was never acknowledged. */
  async load(): Promise<LoadedState> {
    await Deno.mkdir(`${this.#dir}/topics`, { recursive: true });
    const topics = new Map<string, Partition[]>();
    for await (const entry of Deno.readDir(`${this.#dir}/topics`)) {
      if (!entry.isDirectory) continue;
      const topic = decodeURIComponent(entry.name);
      const meta = await readJson<{ partitions: number }>(`${this.#topicDir(topic)}/meta.json`);
      if (meta === undefined) continue;
      const partitions: Partition[] = [];
      for (let p = 0; p < meta.partitions; p++) {
        const lines = await readLines<RecordLine | MarkerLine>(`${this.#topicDir(topic)}/${p}.jsonl`);
        partitions.push(this.#partitionOf(topic, p, lines));
      }
      topics.set(topic, partitions);
    }
    const offsets = new Map<string, Map<string, number>>();
    for (const line of await readLines<{ g: string; t: string; p: number; o: number }>(this.#offsetsFile)) {
      let group = offsets.get(line.g);
      if (group === undefined) offsets.set(line.g, group = new Map());
      group.set(offsetKeyOf(line.t, line.p), line.o);
    }
    await this.#compactOffsets(offsets);
    return { topics, offsets };
  }

  async createTopic(topic: string, partitions: number): Promise<void> {
    await Deno.mkdir(this.#topicDir(topic), { recursive: true });
    await atomicWrite(`${this.#topicDir(topic)}/meta.json`, JSON.stringify({ partitions }) + "\n");
  }

  /**
   * Appends records to one partition file, then the new log start when retention moved it, in one write;
   * resolves once the bytes are written (and synced with `fsync`).
   */
  async append(topic: string, partition: number, records: readonly StoredRecord[], logStart?: number): Promise<void> {
    const marker = logStart === undefined ? "" : markerLineOf(logStart);
    await this.#appendText(this.#partitionFile(topic, partition), records.map(recordLineOf).join("") + marker);
  }

  /**
   * Accounts for records retention dropped from `state` (already gone in memory). Appends a log-start marker
   * unless the caller's `append` carried it, or rewrites the file once its garbage outweighs what it keeps.
   */
  async dropped(topic: string, index: number, state: Partition, dropped: Dropped, markerWritten: boolean) {
    const key = offsetKeyOf(topic, index);
    const garbage = this.#garbage.get(key) ?? { lines: 0, bytes: 0 };
    this.#garbage.set(key, garbage);
    garbage.lines += dropped.records;
    garbage.bytes += dropped.bytes;
    const rewrite = garbage.lines >= Math.max(state.count, GARBAGE_LINES_MIN) ||
      garbage.bytes >= Math.max(state.bytes, GARBAGE_BYTES_MIN);
    if (rewrite) {
      const lines = [markerLineOf(state.logStart)];
      for (const record of state.records()) lines.push(recordLineOf(record));
      await atomicWrite(this.#partitionFile(topic, index), lines.join(""), this.#fsync);
      // The file was replaced from memory: a cut the old one still owed is void.
      this.#torn.delete(this.#partitionFile(topic, index));
      this.#garbage.delete(key);
      return;
    }
    if (!markerWritten) await this.#appendText(this.#partitionFile(topic, index), markerLineOf(state.logStart));
    garbage.lines++;
  }

  /** Appends one committed offset; `allOffsets` is the full state, used when the file is compacted. */
  async commit(
    group: string,
    topic: string,
    partition: number,
    offset: number,
    allOffsets: Map<string, Map<string, number>>,
  ): Promise<void> {
    await this.#appendText(this.#offsetsFile, JSON.stringify({ g: group, t: topic, p: partition, o: offset }) + "\n");
    if (++this.#offsetLines > OFFSET_LINES_MAX) await this.#compactOffsets(allOffsets);
  }

  get #offsetsFile(): string {
    return `${this.#dir}/offsets.jsonl`;
  }

  #topicDir(topic: string): string {
    return `${this.#dir}/topics/${encodeURIComponent(topic)}`;
  }

  #partitionFile(topic: string, partition: number): string {
    return `${this.#topicDir(topic)}/${partition}.jsonl`;
  }

  /** Rebuilds a partition from its file: the last marker is the log start; records below it are garbage. */
  #partitionOf(topic: string, index: number, lines: readonly (RecordLine | MarkerLine)[]): Partition {
    let logStart = 0;
    for (const line of lines) if ("s" in line) logStart = Math.max(logStart, line.s);
    const records: StoredRecord[] = [];
    let garbage = 0;
    for (const line of lines) {
      if ("s" in line || line.o < logStart) garbage++;
      else records.push({ offset: line.o, key: line.k, value: line.v, headers: line.h, timestampMs: line.t });
    }
    if (garbage > 0) this.#garbage.set(offsetKeyOf(topic, index), { lines: garbage, bytes: 0 });
    // A file written before markers existed starts at its first record.
    return new Partition(records[0]?.offset ?? logStart, records);
  }

  async #compactOffsets(offsets: Map<string, Map<string, number>>): Promise<void> {
    const lines: string[] = [];
    for (const [group, positions] of offsets) {
      for (const [key, offset] of positions) {
        const [topic, partition] = key.split("\u0000");
        lines.push(JSON.stringify({ g: group, t: topic, p: Number(partition), o: offset }) + "\n");
      }
    }
    await atomicWrite(this.#offsetsFile, lines.join(""));
    this.#torn.delete(this.#offsetsFile);
    this.#offsetLines = lines.length;
  }

  /**
   * Appends `text` whole or not at all: a write that fails partway (a full disk) is cut back to the size the
   * file had, so its lines — complete ones too, which were never acknowledged and whose offsets the next
   * publish reuses — do not stay in front of later appends. Were they kept, the next open would read a
   * corrupt line in the middle of the file and refuse to start, or load two records at one offset.
   */
  async #appendText(path: string, text: string): Promise<void> {
    const file = await Deno.open(path, { append: true, create: true });
    try {
      const tornAt = this.#torn.get(path);
      if (tornAt !== undefined) {
        await this.#io.truncate(file, tornAt);
        this.#torn.delete(path);
      }
      const sizeBefore = (await file.stat()).size;
      try {
        const bytes = new TextEncoder().encode(text);
        for (let written = 0; written < bytes.length;) {
          written += await this.#io.write(file, bytes.subarray(written));
        }
        if (this.#fsync) await file.syncData();
      } catch (error) {
        try {
          await this.#io.truncate(file, sizeBefore);
        } catch {
          this.#torn.set(path, sizeBefore);
        }
        throw error;
      }
    } finally {
      file.close();
    }
  }
}

function recordLineOf(r: StoredRecord): string {
  return JSON.stringify({ o: r.offset, k: r.key, v: r.value, h: r.headers, t: r.timestampMs }) + "\n";
}

function markerLineOf(logStart: number): string {
  return JSON.stringify({ s: logStart }) + "\n";
}

/** Replaces `path` whole: a crash leaves either the old file or the new one, never a mix. */
async function atomicWrite(path: string, text: string, fsync = false): Promise<void> {
  const temporary = `${path}.tmp`;
  const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
  try {
    const bytes = new TextEncoder().encode(text);
    for (let written = 0; written < bytes.length;) written += await file.write(bytes.subarray(written));
    if (fsync) await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(temporary, path);
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function readLines<T>(path: string): Promise<T[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  // Every acknowledged write ends with a newline; a tail without one was torn by a crash and never
  // acknowledged. Cut it off, or the next append would be glued to it.
  const intact = text.slice(0, text.lastIndexOf("\n") + 1);
  if (intact.length !== text.length) await Deno.truncate(path, new TextEncoder().encode(intact).length);
  const parsed: T[] = [];
  const lines = intact.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === "") continue;
    try {
      parsed.push(JSON.parse(lines[i]) as T);
    } catch (error) {
      throw new Error(`Corrupt line ${i + 1} in "${path}": ${(error as Error).message}`);
    }
  }
  return parsed;
}

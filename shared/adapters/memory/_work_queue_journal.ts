/**
 * @module
 * Disk persistence for the embedded work queue: what RabbitMQ keeps for durable queues and persistent
 * messages, as one append-only JSON-lines journal. Private to the memory adapter.
 *
 * Layout under `dataDir`:
 *   journal.jsonl   {"d":"orders"}                                      queue "orders" (and "orders.dlq") exists
 *                   {"n":7,"q":"orders","i":"…","b":"…","h":{…},"a":1}  message 7 is in "orders" at attempt 1
 *                   {"n":7,"q":"orders",…,"a":2,"t":1700000030000}      … waiting for a retry due at t (ms, epoch)
 *                   {"x":7}                                             message 7 is gone (acked)
 *
 * A later line for the same `n` replaces the earlier one: a retry or a move to the DLQ is one line, so a crash
 * cannot leave the message in both places or in neither. Deliveries are not journaled: a message delivered
 * and not acked is simply still live, so the next process delivers it again at the attempt it had.
 *
 * Writes are queued and written in order, those queued meanwhile together in one write (and one fsync). The
 * file is rewritten (temp file, rename) once the lines it holds for acked or replaced messages outnumber the
 * live ones, so it stays within about twice the live messages, and each rewrite is paid for by as many
 * appends as it writes lines.
 */

import { AppendOnlyFile, type FileIo, readJsonLines } from "./_jsonl_file.ts";

/** A message as the embedded work queue keeps it; `seq` names it in the journal for its whole life. */
export interface JournaledMessage {
  readonly seq: number;
  readonly id: string;
  readonly body: string;
  /** User headers plus x-bv-error / x-bv-attempts; the attempt travels separately. */
  readonly headers: Readonly<Record<string, string>>;
  readonly attempt: number;
}

/** A message not acked yet: where it is, and when it is due if it waits for a retry. */
export interface LiveMessage {
  readonly queue: string;
  readonly message: JournaledMessage;
  /** Milliseconds since the epoch; absent when the message is ready (or in flight). */
  readonly dueAtMs?: number;
}

/** What the journal held when it was opened. */
export interface JournalContents {
  /** Queues declared by any earlier process (each with its `.dlq`). */
  readonly queues: readonly string[];
  /** In the order their last line was written. */
  readonly messages: readonly LiveMessage[];
  /** Above every `seq` the file mentions, so no line of the file can be taken for a new message's. */
  readonly nextSeq: number;
}

/** Lines for acked or replaced messages a journal may hold however few are live, so small queues rarely rewrite. */
const GARBAGE_LINES_MIN = 1_000;
/** Text (UTF-16 units) for acked or replaced messages a journal may hold however little is live. */
const GARBAGE_CHARS_MIN = 1024 * 1024;
/** Lines in one write: a burst is written in pieces of this size, so one failure rejects at most this many. */
const BATCH_LINES_MAX = 1_000;

type DeclarationLine = { d: string };
type MessageLine = { n: number; q: string; i: string; b: string; h: Record<string, string>; a: number; t?: number };
type RemovalLine = { x: number };
type Line = DeclarationLine | MessageLine | RemovalLine;

interface PendingWrite {
  readonly text: string;
  /** Applied to the live state once the line is on disk (a new message or queue is live only then). */
  readonly written?: () => void;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class WorkQueueJournal {
  readonly #dir: string;
  readonly #file: AppendOnlyFile;
  readonly #warn: (message: string, fields: Record<string, unknown>) => void;
  /** Declared queue → the length of its line. */
  readonly #queues = new Map<string, number>();
  /** seq → the live message and the length of its line; in the order the lines were queued. */
  readonly #messages = new Map<number, { readonly live: LiveMessage; readonly chars: number }>();
  #liveChars = 0;
  #fileLines = 0;
  #fileChars = 0;
  /** After a failed rewrite, the next is tried once the file has this many lines. */
  #rewriteAfterLines = 0;
  #pending: PendingWrite[] = [];
  #flushing: Promise<void> | undefined;
  #closed = false;

  constructor(
    dataDir: string,
    options: {
      readonly fsync: boolean;
      readonly io?: FileIo;
      readonly warn: (message: string, fields: Record<string, unknown>) => void;
    },
  ) {
    this.#dir = dataDir.replace(/\/+$/, "");
    this.#file = new AppendOnlyFile(`${this.#dir}/journal.jsonl`, { fsync: options.fsync, io: options.io });
    this.#warn = options.warn;
  }

  /** Reads the journal back (a torn last line is cut off: it was never acknowledged) and compacts it if due. */
  async load(): Promise<JournalContents> {
    await Deno.mkdir(this.#dir, { recursive: true });
    const { lines, chars } = await readJsonLines<Line>(`${this.#dir}/journal.jsonl`);
    let seqMax = 0;
    for (const line of lines) {
      if ("d" in line) this.#queues.set(line.d, declarationLineOf(line.d).length);
      else if ("x" in line) {
        seqMax = Math.max(seqMax, line.x);
        this.#forget(line.x);
      } else {
        seqMax = Math.max(seqMax, line.n);
        const live: LiveMessage = {
          queue: line.q,
          message: { seq: line.n, id: line.i, body: line.b, headers: line.h, attempt: line.a },
          dueAtMs: line.t,
        };
        this.#keep(live, messageLineOf(live));
      }
    }
    this.#fileLines = lines.length;
    this.#fileChars = chars;
    await this.#compactIfMostlyGarbage();
    return {
      queues: [...this.#queues.keys()],
      messages: [...this.#messages.values()].map((entry) => entry.live),
      nextSeq: seqMax + 1,
    };
  }

  /** Records that `queue` exists; resolves at once for a queue the journal already has. */
  declare(queue: string): Promise<void> {
    if (this.#queues.has(queue)) return Promise.resolve();
    const text = declarationLineOf(queue);
    return this.#append(text, () => this.#queues.set(queue, text.length));
  }

  /** A newly published message: resolves once its line is on disk, which is when it counts as accepted. */
  add(queue: string, message: JournaledMessage): Promise<void> {
    const live: LiveMessage = { queue, message };
    const text = messageLineOf(live);
    return this.#append(text, () => this.#keep(live, text));
  }

  /** A message moved on (waiting for a retry, or in a DLQ): replaces its earlier line. */
  update(live: LiveMessage): Promise<void> {
    const text = messageLineOf(live);
    // Live at once, so a rewrite in between keeps the new state whether or not this line gets written.
    this.#keep(live, text);
    return this.#append(text);
  }

  /** An acked message: gone. */
  remove(seq: number): Promise<void> {
    this.#forget(seq);
    return this.#append(JSON.stringify({ x: seq } satisfies RemovalLine) + "\n");
  }

  /** Waits for the queued writes, then closes the file; later writes reject. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#flushing;
    this.#file.close();
  }

  #append(text: string, written?: () => void): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Work queue journal is closed"));
    return new Promise((resolve, reject) => {
      this.#pending.push({ text, written, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  /** Writes queued lines in order, up to a batch at a time, until none are left. */
  async #flush(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, BATCH_LINES_MAX);
      const text = batch.map((write) => write.text).join("");
      try {
        await this.#file.append(text);
      } catch (error) {
        for (const write of batch) write.reject(error);
        continue;
      }
      this.#fileLines += batch.length;
      this.#fileChars += text.length;
      for (const write of batch) {
        write.written?.();
        write.resolve();
      }
      await this.#compactIfMostlyGarbage();
    }
    this.#flushing = undefined;
  }

  /**
   * Rewrites the file from the live state once the lines of acked or replaced messages are at least as many
   * as the live lines (and at least 1,000 or 1 MiB). Lines queued but not written yet are written after the
   * new file; replaying them is harmless, as every line sets or removes one message whole.
   */
  async #compactIfMostlyGarbage(): Promise<void> {
    const liveLines = this.#queues.size + this.#messages.size;
    let liveChars = this.#liveChars;
    for (const chars of this.#queues.values()) liveChars += chars;
    const due = this.#fileLines >= this.#rewriteAfterLines &&
      (this.#fileLines - liveLines >= Math.max(liveLines, GARBAGE_LINES_MIN) ||
        this.#fileChars - liveChars >= Math.max(liveChars, GARBAGE_CHARS_MIN));
    if (!due) return;
    const lines = [...this.#queues.keys()].map(declarationLineOf);
    for (const { live } of this.#messages.values()) lines.push(messageLineOf(live));
    const text = lines.join("");
    try {
      await this.#file.replace(text);
    } catch (error) {
      // The old file is intact (only the temp file was written): keep appending, try again later.
      this.#rewriteAfterLines = this.#fileLines + GARBAGE_LINES_MIN;
      this.#warn("Cannot compact the work-queue journal; appending to the old file and trying again later", {
        file: `${this.#dir}/journal.jsonl`,
        lines: this.#fileLines,
        error: error instanceof Error ? error.message : String(error),
      });
      return;
    }
    this.#fileLines = lines.length;
    this.#fileChars = text.length;
    this.#rewriteAfterLines = 0;
  }

  #keep(live: LiveMessage, text: string): void {
    this.#forget(live.message.seq);
    this.#messages.set(live.message.seq, { live, chars: text.length });
    this.#liveChars += text.length;
  }

  #forget(seq: number): void {
    const entry = this.#messages.get(seq);
    if (entry === undefined) return;
    this.#messages.delete(seq);
    this.#liveChars -= entry.chars;
  }
}

function declarationLineOf(queue: string): string {
  return JSON.stringify({ d: queue } satisfies DeclarationLine) + "\n";
}

function messageLineOf({ queue, message, dueAtMs }: LiveMessage): string {
  const line: MessageLine = {
    n: message.seq,
    q: queue,
    i: message.id,
    b: message.body,
    h: { ...message.headers },
    a: message.attempt,
  };
  if (dueAtMs !== undefined) line.t = dueAtMs;
  return JSON.stringify(line) + "\n";
}

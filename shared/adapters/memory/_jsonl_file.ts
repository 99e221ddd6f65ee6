/**
 * @module
 * JSON-lines files that survive a crash, for the embedded adapters' persistence: a read that cuts a torn
 * tail, whole-or-nothing appends on one open handle, and whole-file replacement (temp file, fsync, rename).
 * Private to the memory adapter. The event-log store (`_event_log_store.ts`) still has its own copies of
 * these three pieces, written first; this module is meant to be the one both use.
 */

import type { StoreFileIo } from "./_event_log_store.ts";

/** How a file is written and cut; a seam so tests can make a write fail halfway (a full disk). @internal */
export type FileIo = StoreFileIo;

const DENO_FILE_IO: FileIo = {
  write: (file, bytes) => file.write(bytes),
  truncate: (file, size) => file.truncate(size),
};

/** What {@linkcode readJsonLines} found: the parsed lines and the length of the intact text (UTF-16 units). */
export interface JsonLines<T> {
  readonly lines: T[];
  readonly chars: number;
}

/**
 * Reads `path` (missing: empty). Every acknowledged append ends with a newline, so a tail without one was
 * torn by a crash and never acknowledged: it is cut off the file, or the next append would be glued to it.
 * A corrupt complete line is not guessed around: it throws, naming the file and line.
 */
export async function readJsonLines<T>(path: string): Promise<JsonLines<T>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { lines: [], chars: 0 };
    throw error;
  }
  const intact = text.slice(0, text.lastIndexOf("\n") + 1);
  if (intact.length !== text.length) await Deno.truncate(path, new TextEncoder().encode(intact).length);
  const lines: T[] = [];
  const raw = intact.split("\n");
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === "") continue;
    try {
      lines.push(JSON.parse(raw[i]) as T);
    } catch (error) {
      throw new Error(`Corrupt line ${i + 1} in "${path}": ${(error as Error).message}; move the file away to start`);
    }
  }
  return { lines, chars: intact.length };
}

/**
 * One append-only file kept open between appends. An append is written whole or not at all: a write that
 * fails partway (a full disk) is cut back to the last acknowledged byte, so no line the caller was told
 * failed stays in the file ahead of later ones (if even the cut fails, the next append makes it first).
 */
export class AppendOnlyFile {
  readonly #path: string;
  readonly #fsync: boolean;
  readonly #io: FileIo;
  #file: Deno.FsFile | undefined;
  /** Bytes acknowledged so far: where a failed append is cut back to. */
  #sizeBytes = 0;
  /** The last append failed and its cut-back failed too: cut before writing anything else. */
  #torn = false;

  constructor(path: string, options: { readonly fsync: boolean; readonly io?: FileIo }) {
    this.#path = path;
    this.#fsync = options.fsync;
    this.#io = options.io ?? DENO_FILE_IO;
  }

  /** Appends `text`; resolves once it is written (and synced to disk with `fsync`). */
  async append(text: string): Promise<void> {
    const file = await this.#open();
    if (this.#torn) {
      await this.#io.truncate(file, this.#sizeBytes);
      this.#torn = false;
    }
    const bytes = new TextEncoder().encode(text);
    try {
      for (let written = 0; written < bytes.length;) written += await this.#io.write(file, bytes.subarray(written));
      if (this.#fsync) await file.syncData();
    } catch (error) {
      try {
        await this.#io.truncate(file, this.#sizeBytes);
      } catch {
        this.#torn = true;
      }
      throw error;
    }
    this.#sizeBytes += bytes.length;
  }

  /**
   * Replaces the whole file with `text`: written to `<path>.tmp`, synced, renamed over the file (and with
   * `fsync` the directory synced too, so the rename itself survives power loss). A crash leaves the old
   * file or the new one, never a mix; a leftover `.tmp` is overwritten by the next replace.
   */
  async replace(text: string): Promise<void> {
    const temporary = `${this.#path}.tmp`;
    const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
    try {
      const bytes = new TextEncoder().encode(text);
      for (let written = 0; written < bytes.length;) written += await file.write(bytes.subarray(written));
      // Always synced, whatever `fsync` says: rare, and a rename that reached the disk before the data would
      // lose every line, not only the last ones.
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, this.#path);
    this.close();
    this.#torn = false;
    if (this.#fsync) await syncDirectory(this.#path);
  }

  /** Closes the handle; the next append opens the file again. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  async #open(): Promise<Deno.FsFile> {
    if (this.#file !== undefined) return this.#file;
    const file = await Deno.open(this.#path, { append: true, create: true });
    // A file left torn keeps the size it must be cut back to; its current size includes the torn bytes.
    if (!this.#torn) this.#sizeBytes = (await file.stat()).size;
    this.#file = file;
    return file;
  }
}

async function syncDirectory(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const directory = await Deno.open(slash < 0 ? "." : path.slice(0, Math.max(1, slash)), { read: true });
  try {
    await directory.sync();
  } finally {
    directory.close();
  }
}

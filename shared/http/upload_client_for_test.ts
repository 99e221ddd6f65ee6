/**
 * @module
 * Test support: an HTTP/1.1 client on a raw TCP socket that sends a request's head and then its body at whatever
 * pace a test chooses (trickled, stalled, never finished), reading the answer as it comes, for what `fetch` would not
 * do. Not exported from `mod.ts`.
 */

const encoder = new TextEncoder();

export interface UploadAnswer {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Headers;
  /** The body as sent (a chunked one is not decoded). */
  readonly body: string;
  /** When the answer's head arrived (`performance.now()`). */
  readonly atMs: number;
}

export interface Upload {
  /** Sends `text` as it is; false once the whole answer is in or the connection failed (nobody reads the rest). */
  send(text: string): Promise<boolean>;
  /** The answer once its head arrived, or undefined when none came within `withinMs`. */
  answer(withinMs: number): Promise<UploadAnswer | undefined>;
  /** The answer's head has arrived. */
  answered(): boolean;
  close(): void;
}

/**
 * Connects to `port` and sends `head` (request line and headers, without the blank line) with `Host` and
 * `Connection: close` added (left out with `keepAlive`, so that a `Connection: close` in the answer is the server's
 * choice: Deno's server adds one to every answer to a client that sent it); the body is up to the caller.
 */
export async function startUpload(
  port: number,
  head: string,
  options?: { readonly keepAlive?: boolean },
): Promise<Upload> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const connection = options?.keepAlive ? "" : "Connection: close\r\n";
  await conn.write(encoder.encode(`${head}\r\nHost: upload.test\r\n${connection}\r\n`));
  let received = "";
  let answer: UploadAnswer | undefined;
  let done = false;
  const headArrived = Promise.withResolvers<void>();
  const reading = (async () => {
    const buffer = new Uint8Array(16 * 1024);
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        received += decoder.decode(buffer.subarray(0, n), { stream: true });
        answer ??= headOf(received);
        if (answer !== undefined) headArrived.resolve();
        // Deno's server keeps a connection whose request body it did not read to the end open after answering.
        if (answer !== undefined && isWhole(received)) break;
      }
    } catch {
      // A reset after the answer (the server closed with body bytes unread) ends the reading like a FIN.
    }
    done = true;
    if (answer !== undefined) answer = { ...answer, body: received.slice(received.indexOf("\r\n\r\n") + 4) };
    headArrived.resolve();
  })();
  return {
    async send(text) {
      if (done) return false;
      try {
        await conn.write(encoder.encode(text));
        return true;
      } catch {
        return false;
      }
    },
    async answer(withinMs) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, withinMs));
      await Promise.race([deadline, headArrived.promise]);
      if (answer !== undefined) await Promise.race([deadline, reading]);
      clearTimeout(timer);
      return answer;
    },
    answered: () => answer !== undefined,
    close() {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  };
}

/** True once `text` holds an answer's head and its whole body (by `content-length`, or the last chunk). */
function isWhole(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  const head = text.slice(0, end).toLowerCase();
  const length = /\r\ncontent-length:\s*(\d+)/.exec(head)?.[1];
  if (length !== undefined) return text.length - end - 4 >= Number(length);
  return head.includes("transfer-encoding: chunked") && text.endsWith("0\r\n\r\n");
}

function headOf(text: string): UploadAnswer | undefined {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const headers = new Headers();
  for (const line of lines) headers.append(line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim());
  return { status: Number(statusLine.split(" ")[1]), headers, body: text.slice(end + 4), atMs: performance.now() };
}

/** A chunk of a chunked body (RFC 9112 section 7.1); `""` gives the last chunk. */
export function chunk(data: string): string {
  return data === "" ? "0\r\n\r\n" : `${encoder.encode(data).byteLength.toString(16)}\r\n${data}\r\n`;
}

/** Resolves after `ms`: the pace of a trickled upload (milliseconds, never a long sleep). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

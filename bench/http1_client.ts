/**
 * @module
 * A minimal keep-alive HTTP/1.1 GET client for the bench's load generators — not for the platform.
 *
 * Why: `fetch` in Deno costs about 0.1 ms of CPU per request closed-loop and 0.2–0.25 ms in an open-loop
 * schedule here (its request/response objects, streams and the hyper client), against about 0.03 ms for
 * writing the request bytes on a `Deno.connect` socket and parsing the answer. At 2,000 requests/s that is
 * half a core of the 2-core machine spent by the load generator, taken from the servers being measured (and
 * from both sides of a comparison alike). Like `wrk`, this client does only what a load generator needs: GET
 * with a few headers, one request at a time per connection (no pipelining), bodies framed by
 * `content-length` or `transfer-encoding: chunked`, `connection: close` honoured. Anything else (a 1xx, a body
 * framed by closing the connection, a malformed answer) rejects the request and drops the connection.
 */
import { Buffer } from "node:buffer";

export interface Http1Response {
  readonly status: number;
  /** Lower-cased names. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Uint8Array;
  /** The body as UTF-8 text. */
  text(): string;
}

export interface Http1Client {
  /** GET `path` (starting with "/") with `headers`; rejects after `timeoutMs` (and drops that connection). */
  get(path: string, headers?: Readonly<Record<string, string>>): Promise<Http1Response>;
  /** Closes every connection; later calls reject. */
  close(): void;
}

export interface Http1ClientOptions {
  /** Connections kept open at most (idle ones are reused; beyond this, requests wait). @default 64 */
  readonly maxConnections?: number;
  /** Bound on one request, connecting included. @default 10_000 */
  readonly timeoutMs?: number;
}

const HEADER_BYTES_MAX = 64 * 1024;
const BODY_BYTES_MAX = 16 * 1024 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A client for `http://{hostname}:{port}`. */
export function createHttp1Client(hostname: string, port: number, options: Http1ClientOptions = {}): Http1Client {
  const maxConnections = options.maxConnections ?? 64;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const idle: Connection[] = [];
  const open = new Set<Connection>();
  const waiting: ((connection: Connection | Error) => void)[] = [];
  let closed = false;

  async function acquire(): Promise<Connection> {
    if (closed) throw new Error("HTTP/1.1 client closed");
    const reused = idle.pop();
    if (reused !== undefined) return reused;
    if (open.size < maxConnections) {
      const connection = new Connection(await Deno.connect({ hostname, port }));
      if (closed) {
        connection.close();
        throw new Error("HTTP/1.1 client closed");
      }
      open.add(connection);
      return connection;
    }
    const next = await new Promise<Connection | Error>((resolve) => waiting.push(resolve));
    if (next instanceof Error) throw next;
    return next;
  }

  function release(connection: Connection, reusable: boolean): void {
    if (!reusable || closed) {
      connection.close();
      open.delete(connection);
      // A waiter gets a fresh connection instead.
      const waiter = waiting.shift();
      if (waiter !== undefined) acquire().then(waiter, waiter);
      return;
    }
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(connection);
    else idle.push(connection);
  }

  const hostHeader = `host: ${hostname}:${port}\r\n`;
  return {
    async get(path, headers = {}) {
      let head = `GET ${path} HTTP/1.1\r\n${hostHeader}`;
      for (const [name, value] of Object.entries(headers)) {
        if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new TypeError(`Header ${name} holds CR or LF`);
        head += `${name}: ${value}\r\n`;
      }
      const request = encoder.encode(`${head}\r\n`);
      const connection = await acquire();
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const exchange = connection.exchange(request);
        // After a timeout the exchange fails on the closed socket: nobody waits for that rejection.
        exchange.catch(() => {});
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`GET ${path}: no complete answer within ${timeoutMs} ms`)),
            timeoutMs,
          );
        });
        const response = await Promise.race([exchange, timeout]);
        release(connection, response.keepAlive);
        return response;
      } catch (error) {
        release(connection, false);
        throw error;
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      closed = true;
      for (const connection of open) connection.close();
      open.clear();
      idle.length = 0;
      for (const waiter of waiting.splice(0)) waiter(new Error("HTTP/1.1 client closed"));
    },
  };
}

/** One socket with a read buffer that carries bytes past one answer over to the next (there should be none). */
class Connection {
  #buffer = new Uint8Array(16 * 1024);
  /** Unconsumed bytes are `#buffer[#start, #end)`. */
  #start = 0;
  #end = 0;

  constructor(private readonly conn: Deno.TcpConn) {}

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  async exchange(request: Uint8Array): Promise<Http1Response & { keepAlive: boolean }> {
    let written = 0;
    while (written < request.length) written += await this.conn.write(request.subarray(written));
    const headEnd = await this.#fill((from) => indexOfHeadEnd(this.#buffer, from, this.#end), HEADER_BYTES_MAX);
    const head = decoder.decode(this.#buffer.subarray(this.#start, headEnd));
    this.#start = headEnd + 4;
    const lines = head.split("\r\n");
    const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (statusLine === null) throw new Error(`Not an HTTP/1.x status line: ${JSON.stringify(lines[0].slice(0, 80))}`);
    const status = Number(statusLine[1]);
    if (status < 200) throw new Error(`Interim answer ${status} is not supported`);
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon <= 0) throw new Error(`Malformed header line ${JSON.stringify(lines[i].slice(0, 80))}`);
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i].slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    let body: Uint8Array;
    if (status === 204 || status === 304) body = new Uint8Array(0);
    else if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) body = await this.#readChunked();
    else if (headers.has("content-length")) {
      const length = Number(headers.get("content-length"));
      if (!Number.isSafeInteger(length) || length < 0 || length > BODY_BYTES_MAX) {
        throw new Error(`Bad content-length ${headers.get("content-length")}`);
      }
      body = await this.#take(length);
    } else throw new Error("An answer framed by closing the connection is not supported");
    const keepAlive = !/\bclose\b/i.test(headers.get("connection") ?? "") && this.#start === this.#end;
    return { status, headers, body, text: () => decoder.decode(body), keepAlive };
  }

  async #readChunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const lineEnd = await this.#fill((from) => indexOfCrLf(this.#buffer, from, this.#end), 1024);
      const sizeText = decoder.decode(this.#buffer.subarray(this.#start, lineEnd)).split(";")[0].trim();
      this.#start = lineEnd + 2;
      if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw new Error(`Bad chunk size ${JSON.stringify(sizeText)}`);
      const size = parseInt(sizeText, 16);
      if (size === 0) {
        // Trailers (none expected) end with an empty line.
        for (;;) {
          const end = await this.#fill((from) => indexOfCrLf(this.#buffer, from, this.#end), HEADER_BYTES_MAX);
          const empty = end === this.#start;
          this.#start = end + 2;
          if (empty) break;
        }
        break;
      }
      total += size;
      if (total > BODY_BYTES_MAX) throw new Error(`Chunked body over ${BODY_BYTES_MAX} bytes`);
      parts.push(await this.#take(size));
      const crlf = await this.#take(2);
      if (crlf[0] !== 13 || crlf[1] !== 10) throw new Error("Chunk not followed by CRLF");
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, total);
  }

  /** Reads until `find` (searching from an index) returns one, at most `limit` bytes past `#start`. */
  async #fill(find: (from: number) => number, limit: number): Promise<number> {
    // Bytes past #start already searched (relative: #readMore may move the unread bytes to the front).
    let scanned = 0;
    for (;;) {
      const found = find(this.#start + Math.max(0, scanned - 3));
      if (found !== -1) return found;
      scanned = this.#end - this.#start;
      if (scanned > limit) throw new Error(`No delimiter within ${limit} bytes`);
      await this.#readMore();
    }
  }

  /** The next `length` bytes (copied). */
  async #take(length: number): Promise<Uint8Array> {
    while (this.#end - this.#start < length) await this.#readMore();
    const bytes = this.#buffer.slice(this.#start, this.#start + length);
    this.#start += length;
    return bytes;
  }

  async #readMore(): Promise<void> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buffer.length) {
      const unread = this.#end - this.#start;
      if (unread * 2 <= this.#buffer.length) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
      } else {
        const bigger = new Uint8Array(this.#buffer.length * 2);
        bigger.set(this.#buffer.subarray(this.#start, this.#end));
        this.#buffer = bigger;
      }
      this.#start = 0;
      this.#end = unread;
    }
    const n = await this.conn.read(this.#buffer.subarray(this.#end));
    if (n === null) throw new Error("Connection closed before the answer was complete");
    this.#end += n;
  }
}

function indexOfHeadEnd(buffer: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 3 < end; i++) {
    if (buffer[i] === 13 && buffer[i + 1] === 10 && buffer[i + 2] === 13 && buffer[i + 3] === 10) return i;
  }
  return -1;
}

function indexOfCrLf(buffer: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 1 < end; i++) {
    if (buffer[i] === 13 && buffer[i + 1] === 10) return i;
  }
  return -1;
}

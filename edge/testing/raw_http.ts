/**
 * @module
 * Test support: HTTP/1.1 over a raw TCP socket, for what `fetch` and `new Request` would change or refuse
 * before the edge saw it (a lower-case method, a body cut off mid-upload), and a region stub that answers
 * with headers and half a body, then drops the connection.
 */
import net from "node:net";

export interface RawAnswer {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Headers;
  readonly body: string;
}

const encoder = new TextEncoder();

/**
 * Sends `head` (request line and headers, without the blank line) and `body` to `port`, and reads the answer
 * to its end. With `cutBody`, the head declares `body.length + cutBody` bytes: the client stops short and
 * half-closes its side (it can still read), as a client does when its upload breaks off.
 */
export async function rawExchange(
  port: number,
  head: string,
  body = "",
  options?: { readonly cutBody?: number },
): Promise<RawAnswer> {
  const declared = encoder.encode(body).byteLength + (options?.cutBody ?? 0);
  const length = body === "" && options?.cutBody === undefined ? "" : `Content-Length: ${declared}\r\n`;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(`${head}\r\nHost: edge.test\r\nConnection: close\r\n${length}\r\n${body}`));
    if (options?.cutBody !== undefined) await conn.closeWrite();
    return parseAnswer(await readAll(conn));
  } finally {
    conn.close();
  }
}

/** Sends a request head and part of its body, then closes the socket at once: the client is gone. */
export async function abandonUpload(port: number, head: string, partBody: string, bodyBytes: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(`${head}\r\nHost: edge.test\r\nContent-Length: ${bodyBytes}\r\n\r\n${partBody}`));
  conn.close();
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(16 * 1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  const all = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return all;
}

function parseAnswer(bytes: Uint8Array): RawAnswer {
  const text = new TextDecoder().decode(bytes);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) throw new Error(`No complete answer head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const headers = new Headers();
  for (const line of lines) headers.append(line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim());
  const rest = text.slice(end + 4);
  const body = headers.get("transfer-encoding")?.includes("chunked") ? unchunked(rest) : rest;
  return { status: Number(statusLine.split(" ")[1]), headers, body };
}

/** The payload of a chunked body (sizes in hex, each chunk followed by CRLF, a zero-size chunk last). */
function unchunked(text: string): string {
  let body = "";
  let at = 0;
  for (;;) {
    const lineEnd = text.indexOf("\r\n", at);
    const size = parseInt(text.slice(at, lineEnd), 16);
    if (!(size > 0)) return body;
    body += text.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}

export interface BrokenRegion {
  readonly url: string;
  /** Connections the region accepted (each one a request the edge sent). */
  readonly connections: () => number;
  close(): Promise<void>;
}

const BROKEN_HEAD = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: public, max-age=60\r\n" +
  "content-length: 1000\r\n\r\n";

/**
 * A region that reads each whole request, then answers a cacheable 200 whose body stops half way: `"reset"`
 * ends with a TCP reset (SO_LINGER 0: the edge's read fails with ECONNRESET), `"close"` with a clean FIN
 * short of the declared `content-length`. On node:net because `Deno.Conn.close()` always sends a FIN first
 * (the peer then reads end-of-file, never the reset) and Deno has no SO_LINGER; `resetAndDestroy` does both.
 */
export async function brokenRegion(mode: "reset" | "close"): Promise<BrokenRegion> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    let received = "";
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      if (!isWholeRequest(received)) return;
      socket.write(`${BROKEN_HEAD}{"region":"broken","padding":"`, () => {
        if (mode === "reset") socket.resetAndDestroy();
        else socket.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** True once `text` holds a request head and as many body bytes as its `content-length` says. */
function isWholeRequest(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end))?.[1];
  return text.length - end - 4 >= Number(length ?? "0");
}

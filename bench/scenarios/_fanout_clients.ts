/**
 * @module
 * A client process of `flash_sale_fanout` (run as its own `deno run`, so thousands of sockets are read
 * outside the bench's event loop). Line-delimited JSON on stdin/stdout:
 * - `{"cmd":"connect","sseUrl","wsUrl","sse":n,"ws":n}` → opens n SSE streams (raw TCP, HTTP/1.1: lighter
 *   than a fetch per stream) and n WebSockets; answers `{"ready":{"sse","ws","failed","fdLimit"}}`.
 * - `{"cmd":"expect","round","match":[…]}` → from now on, the first event (SSE event block or WebSocket
 *   frame) containing every string of `match` is timed on each connection (epoch ms, sub-ms); when all
 *   connections have one, or `timeoutMs` after the arming, answers `{"round","times":[…],"missing":k}`.
 * - `{"cmd":"close"}` → closes everything and exits.
 */
interface Connection {
  /** The time of the current round's event, once seen. */
  hit: boolean;
  /** SSE: text not yet split into events. */
  pending: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const connections: Connection[] = [];
const closers: (() => void)[] = [];
let armed:
  | { round: number; match: readonly string[]; times: number[]; timer: ReturnType<typeof setTimeout> }
  | undefined;
const ROUND_TIMEOUT_MS = 10_000;
const epochMs = () => performance.timeOrigin + performance.now();

function reply(message: unknown): void {
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(message) + "\n"));
}

function seen(connection: Connection, text: string): void {
  const round = armed;
  if (round === undefined || connection.hit || !round.match.every((m) => text.includes(m))) return;
  connection.hit = true;
  round.times.push(epochMs());
  if (round.times.length === connections.length) finish();
}

function finish(): void {
  const round = armed;
  if (round === undefined) return;
  armed = undefined;
  clearTimeout(round.timer);
  reply({ round: round.round, times: round.times, missing: connections.length - round.times.length });
}

async function openSse(url: URL): Promise<void> {
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  const connection: Connection = { hit: false, pending: "" };
  await conn.write(encoder.encode(
    `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`,
  ));
  connections.push(connection);
  closers.push(() => conn.close());
  void (async () => {
    const buffer = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return;
      connection.pending += decoder.decode(buffer.subarray(0, n), { stream: true });
      const events = connection.pending.split("\n\n");
      connection.pending = events.pop() ?? "";
      for (const event of events) seen(connection, event);
    }
  })();
}

function openWs(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const connection: Connection = { hit: false, pending: "" };
    socket.onopen = () => {
      connections.push(connection);
      closers.push(() => socket.close());
      resolve();
    };
    socket.onerror = () => reject(new Error("WebSocket failed"));
    socket.onmessage = (event) => seen(connection, String(event.data));
  });
}

/** Opens `count` connections with `open`, at most 200 handshakes at once; resolves with how many failed. */
async function openMany(count: number, open: () => Promise<void>): Promise<number> {
  let next = 0, failed = 0;
  await Promise.all(Array.from({ length: Math.min(200, count) }, async () => {
    while (next < count) {
      next++;
      await open().catch(() => failed++);
    }
  }));
  return failed;
}

async function fdLimit(): Promise<string> {
  const limits = await Deno.readTextFile("/proc/self/limits").catch(() => "");
  return limits.split("\n").find((line) => line.startsWith("Max open files"))?.replace(/\s+/g, " ") ?? "unknown";
}

async function* lines(): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let end: number;
    while ((end = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, end);
      rest = rest.slice(end + 1);
    }
  }
}

for await (const line of lines()) {
  if (line.trim() === "") continue;
  const command = JSON.parse(line);
  if (command.cmd === "connect") {
    const sseUrl = new URL(command.sseUrl);
    const failedSse = await openMany(command.sse, () => openSse(sseUrl));
    const failedWs = await openMany(command.ws, () => openWs(command.wsUrl));
    reply({ ready: { connections: connections.length, failed: failedSse + failedWs, fdLimit: await fdLimit() } });
  } else if (command.cmd === "expect") {
    for (const connection of connections) connection.hit = false;
    armed = { round: command.round, match: command.match, times: [], timer: setTimeout(finish, ROUND_TIMEOUT_MS) };
    reply({ armed: command.round });
  } else if (command.cmd === "close") {
    for (const close of closers) close();
    break;
  }
}
Deno.exit(0);

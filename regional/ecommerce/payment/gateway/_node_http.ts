/**
 * @module
 * Small helpers for the simulator's plain `node:http` handlers: bounded body reads, JSON answers and the
 * loopback check of the control endpoint.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/** The request body, refused past `bytesMax` (the caller answers 413). */
export class BodyTooLargeError extends Error {
  constructor(bytesMax: number) {
    super(`Body exceeds ${bytesMax} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/** Reads the whole body as UTF-8, stopping (and rejecting) as soon as it passes `bytesMax`. */
export function readBody(req: IncomingMessage, bytesMax: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    req.on("data", (chunk: Uint8Array) => {
      bytes += chunk.byteLength;
      if (bytes > bytesMax) {
        req.removeAllListeners("data");
        req.resume();
        reject(new BodyTooLargeError(bytesMax));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(new TextDecoder().decode(concat(chunks, bytes))));
    req.on("error", reject);
  });
}

function concat(chunks: readonly Uint8Array[], bytes: number): Uint8Array {
  const all = new Uint8Array(bytes);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return all;
}

/** Answers `body` as JSON with `status`. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(new TextEncoder().encode(text).byteLength),
    ...headers,
  });
  res.end(text);
}

/** True when the peer is this machine (127.0.0.0/8 or ::1, also as IPv4-mapped IPv6). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return v4.startsWith("127.") || address === "::1";
}

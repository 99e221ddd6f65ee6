/**
 * @module
 * Test support for the edge: a stand-in region ingress on a real loopback HTTP server. It counts the
 * requests that reach it (health probes, JWKS fetches and invalidation streams apart), serves a JWKS the
 * test controls, product reads with a version the test bumps, a GraphQL endpoint, the invalidation
 * stream of the edge contract (`event: purge`, `data: {"productId": "…"}`), a flash-sale stream shaped like
 * the region's (`id:` numbers, resume after `Last-Event-ID`), a WebSocket echo at `/ws/echo` that names
 * the region, and a `/readyz` whose latency the test sets.
 */
import type { JSONWebKeySet } from "jose";
import { FLASH_SALES_PATH } from "../flash_sale_fanout.ts";
import { INVALIDATIONS_PATH } from "../invalidation_stream.ts";

export interface FakeRegionState {
  ready: boolean;
  /** Requests that reached the region's API (not /readyz, the JWKS or the invalidation stream). */
  hits: number;
  jwksFetches: number;
  streamConnects: number;
  /** The JWKS served at /.well-known/jwks.json. */
  jwks: JSONWebKeySet;
  /** Version per product id, bumped by the test to see fresh data; missing ids answer 404. */
  versions: Map<string, number>;
  /** Extra headers on product and GraphQL answers (for example a Cache-Control). */
  answerHeaders: Record<string, string>;
  /** Method, headers and URL (path and query) of the last API request that reached the region. */
  lastMethod?: string;
  lastHeaders?: Headers;
  lastUrl?: string;
  /** Added before `/readyz` answers: the probe latency the edge measures. */
  readyDelayMs: number;
  /** Flash-sale streams opened, the ones open now, and the Last-Event-ID each connection sent. */
  flashConnects: number;
  flashOpen: number;
  flashLastEventIds: (string | null)[];
  /** WebSocket sessions opened at `/ws/echo`, and the handshake headers of the last one. */
  wsConnects: number;
  wsLastHeaders?: Headers;
  /** Path and query of the last WebSocket handshake at `/ws/echo` (refused ones included). */
  wsLastUrl?: string;
  /** When set, `/ws/echo` handshakes are answered with this status instead of upgrading, and counted. */
  wsRefuseStatus?: number;
  wsRefused: number;
}

export interface FakeRegion {
  readonly name: string;
  readonly url: string;
  readonly state: FakeRegionState;
  /** Sends `event: purge` to every open invalidation stream. */
  invalidate(productId: string): void;
  /** Sends raw bytes to every open invalidation stream. */
  sendRaw(text: string): void;
  /** Ends every open invalidation stream (the edge must reconnect). */
  dropStreams(): void;
  /** Sends a numbered flash-sale event to every open flash-sale stream; returns its id. */
  flashSale(event: string, data: unknown): number;
  /** Ends every open flash-sale stream (the edge must reconnect and resume). */
  dropFlashStreams(): void;
  /** Closes every WebSocket session from the region's side. */
  closeWebSockets(): void;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

export function fakeRegion(name: string, options?: { readonly jwks?: JSONWebKeySet }): FakeRegion {
  const state: FakeRegionState = {
    ready: true,
    hits: 0,
    jwksFetches: 0,
    streamConnects: 0,
    jwks: options?.jwks ?? { keys: [] },
    versions: new Map(),
    answerHeaders: {},
    readyDelayMs: 0,
    flashConnects: 0,
    flashOpen: 0,
    flashLastEventIds: [],
    wsConnects: 0,
    wsRefused: 0,
  };
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const flashStreams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const flashSent: { id: number; text: string }[] = [];
  const sockets = new Set<WebSocket>();

  function openFlashStream(request: Request): Response {
    // A region API like any other for the hit count (the edge's fan-out is what keeps this at one).
    state.hits++;
    state.flashConnects++;
    const lastEventId = request.headers.get("last-event-id");
    state.flashLastEventIds.push(lastEventId);
    const after = lastEventId === null ? Infinity : Number(lastEventId);
    let self: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        self = controller;
        flashStreams.add(controller);
        state.flashOpen++;
        controller.enqueue(encoder.encode("retry: 2000\n: connected\n\n"));
        for (const sent of flashSent) if (sent.id > after) controller.enqueue(encoder.encode(sent.text));
      },
      cancel() {
        if (flashStreams.delete(self)) state.flashOpen--;
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream; charset=utf-8" } });
  }

  function openWebSocket(request: Request): Response {
    const url = new URL(request.url);
    state.wsLastUrl = url.pathname + url.search;
    if (state.wsRefuseStatus !== undefined) {
      state.wsRefused++;
      return Response.json({ code: "COMMON.UPSTREAM_UNAVAILABLE" }, { status: state.wsRefuseStatus });
    }
    state.wsConnects++;
    // Copied: a Deno request's headers cannot be read once it is closed.
    state.wsLastHeaders = new Headers(request.headers);
    const { socket, response } = Deno.upgradeWebSocket(request);
    sockets.add(socket);
    socket.onmessage = (event) => socket.send(`${name}:${event.data}`);
    socket.onclose = () => sockets.delete(socket);
    return response;
  }

  function openStream(): Response {
    state.streamConnects++;
    let self: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        self = controller;
        streams.add(controller);
        controller.enqueue(encoder.encode(": connected\n\n"));
      },
      cancel() {
        streams.delete(self);
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
  }

  async function api(request: Request, path: string): Promise<Response> {
    state.hits++;
    state.lastMethod = request.method;
    state.lastHeaders = request.headers;
    const url = new URL(request.url);
    state.lastUrl = url.pathname + url.search;
    const product = /^\/api\/v1\/(?:products|inventory)\/([^/]+)$/.exec(path);
    if (product !== null) {
      const version = state.versions.get(product[1]);
      if (version === undefined) return Response.json({ code: "ECOMMERCE.PRODUCT_NOT_FOUND" }, { status: 404 });
      return Response.json({ region: name, id: product[1], version }, { headers: state.answerHeaders });
    }
    if (path === "/graphql" && request.method === "POST") {
      const { variables } = await request.json();
      const id = String(variables?.id ?? "");
      return Response.json(
        { data: { product: { id, version: state.versions.get(id) ?? null, region: name } } },
        { headers: state.answerHeaders },
      );
    }
    await request.body?.cancel();
    return Response.json({ region: name, path, method: request.method });
  }

  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/readyz") {
      const answer = () => new Response(null, { status: state.ready ? 200 : 503 });
      if (state.readyDelayMs <= 0) return answer();
      return new Promise<Response>((resolve) => setTimeout(() => resolve(answer()), state.readyDelayMs));
    }
    if (path === "/.well-known/jwks.json") {
      state.jwksFetches++;
      return Response.json(state.jwks, { headers: { "cache-control": "public, max-age=60" } });
    }
    if (path === INVALIDATIONS_PATH) return openStream();
    if (path === FLASH_SALES_PATH) return openFlashStream(request);
    if (path === "/ws/echo") return openWebSocket(request);
    return api(request, path);
  });

  function broadcast(text: string): void {
    for (const controller of streams) controller.enqueue(encoder.encode(text));
  }

  return {
    name,
    url: `http://127.0.0.1:${server.addr.port}`,
    state,
    invalidate: (productId) => broadcast(`event: purge\ndata: ${JSON.stringify({ productId })}\n\n`),
    sendRaw: broadcast,
    dropStreams: () => {
      for (const controller of streams) controller.close();
      streams.clear();
    },
    flashSale: (event, data) => {
      const id = flashSent.length + 1;
      const text = `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
      flashSent.push({ id, text });
      for (const controller of flashStreams) controller.enqueue(encoder.encode(text));
      return id;
    },
    dropFlashStreams: () => {
      for (const controller of flashStreams) controller.close();
      state.flashOpen -= flashStreams.size;
      flashStreams.clear();
    },
    closeWebSockets: () => {
      for (const socket of sockets) socket.close(1000, "region closed");
    },
    close: async () => {
      for (const socket of sockets) socket.close();
      for (const controller of flashStreams) {
        try {
          controller.close();
        } catch {
          // Already closed by the client going away.
        }
      }
      flashStreams.clear();
      for (const controller of streams) {
        try {
          controller.close();
        } catch {
          // Already closed by the client going away.
        }
      }
      streams.clear();
      await server.shutdown();
    },
  };
}

/** Polls `check` every 10 ms until it holds or `timeoutMs` passes (then throws with `what`). */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 3_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

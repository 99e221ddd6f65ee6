/**
 * @module
 * Test support for the edge: a stand-in region ingress on a real loopback HTTP server. It counts the
 * requests that reach it (health probes, JWKS fetches and invalidation streams apart), serves a JWKS the
 * test controls, product reads with a version the test bumps, a GraphQL endpoint, and the invalidation
 * stream of the edge contract (`event: purge`, `data: {"productId": "…"}`).
 */
import type { JSONWebKeySet } from "jose";
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
  /** Headers of the last API request that reached the region. */
  lastHeaders?: Headers;
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
  };
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();

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
    state.lastHeaders = request.headers;
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
    if (path === "/readyz") return new Response(null, { status: state.ready ? 200 : 503 });
    if (path === "/.well-known/jwks.json") {
      state.jwksFetches++;
      return Response.json(state.jwks, { headers: { "cache-control": "public, max-age=60" } });
    }
    if (path === INVALIDATIONS_PATH) return openStream();
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
    close: async () => {
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

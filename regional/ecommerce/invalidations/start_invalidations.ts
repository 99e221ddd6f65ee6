/**
 * @module
 * Wires the invalidation stream of one process: the hub (open streams), the product-change feed that
 * feeds it, and `GET /api/v1/ecommerce/invalidations`. Until the feed is ready the route answers 503, so
 * an edge never holds a stream that could miss a change; it retries with its own backoff. Streams end (and
 * new ones are refused) once the service app's shutdown signal aborts, so the server can drain.
 */
import { Hono } from "hono";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { installProblemHandlers } from "../../../shared/http/mod.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Cache, EventLog } from "../../../shared/ports/mod.ts";
import { shutdownSignalOf } from "../../../shared/runtime/mod.ts";
import { createInvalidationHub, type InvalidationHubOptions } from "./invalidation_hub.ts";
import { followProductChanges } from "./product_changes.ts";

/** Where each region serves the stream (the edge's `INVALIDATIONS_PATH`). */
export const INVALIDATIONS_PATH = "/api/v1/ecommerce/invalidations";

export interface InvalidationsDeps {
  readonly eventLog: EventLog;
  readonly cache: Cache;
  readonly region: string;
}

export interface Invalidations {
  readonly routes: Hono;
  /** Resolves once streams are served (the change feed is subscribed). */
  readonly ready: Promise<void>;
  /** Open streams in this process. */
  subscribers(): number;
  /** Ends every stream, then stops the feed. */
  close(): Promise<void>;
}

const REGION = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Starts the feed and returns the routes; does not wait for the feed (see `ready`). */
export async function startInvalidations(
  deps: InvalidationsDeps,
  options: InvalidationHubOptions = {},
): Promise<Invalidations> {
  if (!REGION.test(deps.region)) {
    throw new TypeError(
      `startInvalidations() region must be lower-case letters, digits, "-" or "_"; got "${deps.region}"`,
    );
  }
  const hub = createInvalidationHub(options);
  let serving = false;
  let changes;
  try {
    changes = await followProductChanges(deps, (productId) => hub.publish(productId));
  } catch (error) {
    hub.close();
    throw error;
  }
  const ready = changes.ready.then(() => {
    serving = true;
  });
  // Never unhandled: a feed that fails to join keeps the route at 503, which the edge treats as down.
  ready.catch((error) => log.error("invalidation feed failed to start", { error: String(error) }));

  const app = new Hono();
  installProblemHandlers(app);
  app.get(INVALIDATIONS_PATH, (c) => {
    if (!serving) {
      throw new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", "The invalidation stream is starting; reconnect shortly", {
        headers: { "retry-after": "1" },
      });
    }
    return hub.open(c.req.raw.signal, shutdownSignalOf(c));
  });
  const feed = changes;
  return {
    routes: app,
    ready,
    subscribers: () => hub.subscribers(),
    async close() {
      serving = false;
      hub.close();
      await feed.close();
    },
  };
}

/**
 * @module
 * The flash sale HTTP surface: an ADMIN starts a sale, anyone reads a product's live sale price (from the
 * cache, the price authority) and anyone follows starts and ends on `/sse/flash-sales` (or the receive-only
 * WebSocket `/ws/flash-sales`).
 */
import { Hono } from "hono";
import { type AuthEnv, requireAuth } from "../../../shared/auth/require_auth.ts";
import type { TokenVerifier } from "../../../shared/auth/verifier.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { readJson } from "../../../shared/http/json_body.ts";
import { installProblemHandlers } from "../../../shared/http/problem_response.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { shutdownSignalOf } from "../../../shared/runtime/mod.ts";
import type { FlashSaleHub } from "./flash_sale_hub.ts";
import { type FlashPrice, flashPriceKey } from "./flash_price_projection.ts";
import { startFlashSale } from "./flash_sale_store.ts";
import { isProductId, startFlashSaleSchema } from "./schemas.ts";

export interface FlashSaleRoutesDeps {
  readonly sql: Sql;
  readonly cache: Cache;
  readonly verifier: TokenVerifier;
  readonly hub: FlashSaleHub;
  /** Wakes the outbox relay after a commit that appended events. */
  readonly nudgeOutbox: () => void;
  /** Called after a sale started, so the end sweeper plans for it. */
  readonly onSaleStarted: () => void;
  readonly now: () => number;
}

/** `POST /api/v1/flash-sales`, `GET /api/v1/flash-sales/{productId}`, `GET /sse/flash-sales`. */
export function createFlashSaleRoutes(deps: FlashSaleRoutesDeps): Hono {
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);
  const admin = requireAuth(deps.verifier, { roles: ["ADMIN"] });

  app.post("/api/v1/flash-sales", admin, async (c) => {
    const body = await readJson(c, startFlashSaleSchema);
    const sale = await startFlashSale(deps.sql, body, c.get("principal").userId, deps.now());
    deps.nudgeOutbox();
    deps.onSaleStarted();
    return c.json(sale, 201, { location: `/api/v1/flash-sales/${sale.productId}` });
  });

  app.get("/api/v1/flash-sales/:productId", async (c) => {
    const productId = c.req.param("productId");
    if (!isProductId(productId)) throw noLiveSale(productId);
    const text = await deps.cache.get(flashPriceKey(productId)).catch((error) => {
      // The cache is the authority: without it no sale price can be vouched for (seed 003: fast fail).
      throw new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", "Flash sale prices cannot be read now; retry shortly", {
        cause: error,
      });
    });
    const sale = text === null ? undefined : parseFlashPrice(text);
    if (!sale) throw noLiveSale(productId);
    // The price vanishes at endsAt: a shared cache must not keep serving it.
    return c.json(sale, 200, { "cache-control": "no-store" });
  });

  app.get("/sse/flash-sales", (c) => {
    return deps.hub.open({
      lastEventId: c.req.header("last-event-id"),
      signal: c.req.raw.signal,
      shutdown: shutdownSignalOf(c),
    });
  });

  app.get("/ws/flash-sales", (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new ProblemError(
        "COMMON.VALIDATION_FAILED",
        'Open /ws/flash-sales with a WebSocket client ("Upgrade: websocket"), or use /sse/flash-sales',
      );
    }
    return deps.hub.openSocket(c.req.raw, c.req.query("lastEventId"));
  });

  return app as unknown as Hono;
}

function noLiveSale(productId: string): ProblemError {
  return new ProblemError(
    "COMMON.NOT_FOUND",
    `No flash sale is live for product "${productId.slice(0, 64)}"; its regular price applies ` +
      "(GET /api/v1/products/{id})",
  );
}

function parseFlashPrice(text: string): FlashPrice | undefined {
  try {
    const value = JSON.parse(text) as FlashPrice;
    if (typeof value?.saleId === "string" && typeof value.price === "string") return value;
  } catch {
    // Falls through: a corrupt entry is no sale.
  }
  log.warn("flash price entry is corrupt; answering no sale", { chars: text.length });
  return undefined;
}

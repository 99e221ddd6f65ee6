/**
 * @module
 * The inventory REST API: read a product's stock (public) and adjust on_hand (ADMIN). Reads come from
 * the database, the source of truth; the `inventory:{productId}` cache is set only by the event projection.
 */
import { Hono } from "hono";
import { z } from "zod";
import { type AuthEnv, requireAuth, type TokenVerifier } from "../../../shared/auth/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { installProblemHandlers, readJson } from "../../../shared/http/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import {
  ADJUSTMENT_DELTA_MAX,
  ADJUSTMENT_REASON_CHARS_MAX,
  applyStockAdjustment,
  getStockByProductIds,
  isUuid,
} from "./stock.ts";

export interface InventoryRoutesDeps {
  readonly sql: Sql;
  readonly verifier: TokenVerifier;
  /** Wakes the outbox relay after an adjustment committed. */
  readonly nudgeOutbox: () => void;
}

const AdjustmentBody = z.strictObject({
  delta: z.number().int().min(-ADJUSTMENT_DELTA_MAX).max(ADJUSTMENT_DELTA_MAX).refine((d) => d !== 0, {
    message: "must not be 0",
  }),
  reason: z.string().trim().min(1).max(ADJUSTMENT_REASON_CHARS_MAX),
});

/** `GET /api/v1/inventory/{productId}` and `POST /api/v1/inventory/{productId}/adjustments`. */
export function createInventoryRoutes(deps: InventoryRoutesDeps): Hono {
  const { sql } = deps;
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);

  app.get("/api/v1/inventory/:productId", async (c) => {
    const productId = knownShape(c.req.param("productId"));
    const stock = (await getStockByProductIds(sql, [productId])).get(productId);
    if (!stock) throw notFound(productId);
    return c.json(stock);
  });

  app.post(
    "/api/v1/inventory/:productId/adjustments",
    requireAuth(deps.verifier, { roles: ["ADMIN"] }),
    async (c) => {
      const productId = knownShape(c.req.param("productId"));
      const body = await readJson(c, AdjustmentBody);
      const source = `admin:${c.get("principal").userId}`;
      const { stock } = await sql.transaction((tx) =>
        applyStockAdjustment(tx, { productId, delta: body.delta, reason: body.reason, source })
      );
      deps.nudgeOutbox();
      return c.json(stock);
    },
  );
  return app as unknown as Hono;
}

/** A product id that is not even a UUID names no product: 404, never a database error. */
function knownShape(productId: string): string {
  if (!isUuid(productId)) throw notFound(productId);
  return productId.toLowerCase();
}

function notFound(productId: string): ProblemError {
  // Bounded: the path segment is the caller's text.
  const shown = productId.slice(0, 64);
  return new ProblemError("ECOMMERCE.PRODUCT_NOT_FOUND", `No product has id "${shown}"; check the id`);
}

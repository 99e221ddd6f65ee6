/**
 * @module
 * The inventory REST API: read a product's stock (public) and adjust on_hand (ADMIN). Reads come from
 * the database, the source of truth; the `inventory:{productId}` cache is set only by the event projection.
 *
 * An adjustment may carry an `Idempotency-Key` (the orders' middleware and semantics: replayed for 24 h, 422 for
 * another request, 409 while in flight, scoped per user). It is optional, so existing clients keep working, but
 * a client that may retry must send one: a write forwarded from a replica region can commit on the writer after
 * the forwarding hop timed out (504), and without a key the retry applies the delta a second time.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { z } from "zod";
import { type AuthEnv, requireAuth, type TokenVerifier } from "../../../shared/auth/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { installProblemHandlers, readJson } from "../../../shared/http/mod.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Sql, SqlExecutor } from "../../../shared/ports/sql.ts";
// Straight from the file, not orders/mod.ts: orders imports inventory/mod.ts (order_deps.ts), so going through
// the door would make the two modules import each other.
import {
  IDEMPOTENCY_KEY_HEADER,
  type IdempotencyClaim,
  idempotencyMiddleware,
  type IdempotentEnv,
} from "../orders/idempotency.ts";
import {
  ADJUSTMENT_DELTA_MAX,
  ADJUSTMENT_REASON_CHARS_MAX,
  applyStockAdjustment,
  getStockByProductIds,
  isUuid,
  type StockView,
} from "./stock.ts";

export interface InventoryRoutesDeps {
  readonly sql: Sql;
  readonly verifier: TokenVerifier;
  /** Wakes the outbox relay after an adjustment committed. */
  readonly nudgeOutbox: () => void;
  /** Idempotency-Key retention, in-flight lease and clock. @default 24 h, 120 s, the system clock */
  readonly idempotency?: { readonly ttlMs?: number; readonly inFlightLeaseMs?: number; readonly now?: () => Date };
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
  const idempotent = whenKeySent(idempotencyMiddleware({ sql, ...deps.idempotency }));

  app.get("/api/v1/inventory/:productId", async (c) => {
    const productId = knownShape(c.req.param("productId"));
    const stock = (await getStockByProductIds(sql, [productId])).get(productId);
    if (!stock) throw notFound(productId);
    return c.json(stock);
  });

  app.post(
    "/api/v1/inventory/:productId/adjustments",
    requireAuth(deps.verifier, { roles: ["ADMIN"] }),
    idempotent,
    async (c) => {
      const productId = knownShape(c.req.param("productId"));
      const body = await readJson(c, AdjustmentBody);
      // Undefined when the request carried no key (the middleware then did not run).
      const claim: IdempotencyClaim | undefined = c.get("idempotency");
      if (claim?.priorEffect) return c.json(await stockAfterPriorAttempt(sql, productId, claim));
      const source = `admin:${c.get("principal").userId}`;
      const { stock } = await sql.transaction(async (tx) => {
        const result = await applyStockAdjustment(tx, { productId, delta: body.delta, reason: body.reason, source });
        if (claim) await recordEffect(tx, claim, productId);
        return result;
      });
      deps.nudgeOutbox();
      return c.json(stock);
    },
  );
  return app as unknown as Hono;
}

/** Runs `idempotent` only for a request that sent an `Idempotency-Key`; one without runs as it always did. */
function whenKeySent(idempotent: MiddlewareHandler<IdempotentEnv>): MiddlewareHandler<IdempotentEnv> {
  return (c, next) => c.req.header(IDEMPOTENCY_KEY_HEADER) === undefined ? next() : idempotent(c, next);
}

/** What {@linkcode recordEffect} writes: the adjustment of this product (the request hash names the rest). */
function effectOf(productId: string): string {
  return `inventory-adjustment:${productId}`;
}

/**
 * Records the adjustment on the request's claim in the adjustment's own transaction (IdempotencyClaim): when the
 * process dies after the commit but before the response is stored, the retry that takes the claim over after its
 * lease finds the effect and answers instead of adjusting twice. Matches nothing once the claim was taken over.
 */
async function recordEffect(tx: SqlExecutor, claim: IdempotencyClaim, productId: string): Promise<void> {
  await tx.query`
    update idempotency_keys set effect_ref = ${effectOf(productId)}
    where user_id = ${claim.scope} and key = ${claim.key} and created_at = ${claim.started} and status = 'in_flight'`;
}

/** The answer to a retry whose earlier attempt committed the adjustment but died before answering: the stock now. */
async function stockAfterPriorAttempt(sql: Sql, productId: string, claim: IdempotencyClaim): Promise<StockView> {
  log.info("idempotent retry answered with the stock an earlier attempt adjusted", {
    productId,
    effect: claim.priorEffect,
  });
  const stock = (await getStockByProductIds(sql, [productId])).get(productId);
  if (!stock) throw notFound(productId);
  return stock;
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

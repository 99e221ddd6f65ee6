/**
 * @module
 * The order REST endpoints (seed 003 section 4). Every route needs a valid JWT; every POST also needs an
 * `Idempotency-Key` (replayed, not re-run, on a retry). Authorization beyond "signed in" is the policy
 * table of shared/policies, applied in the actions.
 */
import { Hono } from "hono";
import { type AuthEnv, requireAuth } from "../../../shared/auth/mod.ts";
import { installProblemHandlers, readJson } from "../../../shared/http/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { idempotencyMiddleware } from "./idempotency.ts";
import { cancelOrder, fulfilOrder, getOrder, listMyOrders } from "./order_actions.ts";
import { payOrder } from "./pay_order.ts";
import { orderContextOf, type OrderRoutesDeps } from "./order_deps.ts";
import { placeOrder } from "./place_order.ts";
import { cancelOrderBody, listOrdersQuery, placeOrderBody, quickPlaceOrderBody } from "./schemas.ts";

/** Creates the order routes; throws at setup when a dependency is missing or a bound is wrong. */
export function createOrderRoutes(deps: OrderRoutesDeps): Hono {
  const ctx = orderContextOf(deps);
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);
  const auth = requireAuth(deps.verifier);
  const admin = requireAuth(deps.verifier, { roles: ["ADMIN"] });
  const idempotent = idempotencyMiddleware({ sql: deps.sql, now: ctx.now, ...deps.idempotency });

  app.post("/api/v1/orders", auth, idempotent, async (c) => {
    const body = await readJson(c, placeOrderBody, { quickParse: quickPlaceOrderBody });
    const order = await placeOrder(ctx, c.get("principal"), body, c.get("idempotency"));
    return c.json(order, 201, { location: `/api/v1/orders/${order.id}` });
  });

  app.get("/api/v1/orders", auth, (c) => {
    const query = listOrdersQuery.safeParse(c.req.query());
    if (!query.success) {
      const errors = query.error.issues.map((i) => ({
        path: i.path.map(String).join(".") || "(query)",
        message: i.message,
      }));
      throw new ProblemError(
        "COMMON.VALIDATION_FAILED",
        `Query failed validation: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
        { errors },
      );
    }
    return listMyOrders(ctx, c.get("principal"), query.data).then((page) => c.json(page));
  });

  app.get("/api/v1/orders/:id", auth, async (c) => c.json(await getOrder(ctx, c.get("principal"), c.req.param("id"))));

  app.post("/api/v1/orders/:id/pay", auth, idempotent, async (c) => {
    await readOptionalJson(c, emptyBody);
    return c.json(await payOrder(ctx, c.get("principal"), c.req.param("id")));
  });

  app.post("/api/v1/orders/:id/cancel", auth, idempotent, async (c) => {
    const body = await readOptionalJson(c, cancelOrderBody);
    return c.json(await cancelOrder(ctx, c.get("principal"), c.req.param("id"), body?.reason));
  });

  app.post("/api/v1/orders/:id/fulfill", admin, idempotent, async (c) => {
    await readOptionalJson(c, emptyBody);
    return c.json(await fulfilOrder(ctx, c.get("principal"), c.req.param("id")));
  });

  return app as unknown as Hono;
}

const emptyBody = cancelOrderBody.pick({});

/** The body when one was sent (validated like any other), or undefined for an empty one. */
async function readOptionalJson<S extends typeof cancelOrderBody | typeof emptyBody>(
  c: Parameters<typeof readJson>[0],
  schema: S,
): Promise<ReturnType<S["parse"]> | undefined> {
  const bytes = await c.req.arrayBuffer();
  if (bytes.byteLength === 0) return undefined;
  return await readJson(c, schema) as ReturnType<S["parse"]>;
}

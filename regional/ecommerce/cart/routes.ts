/**
 * @module
 * The cart REST API. Every route needs a valid access token; a cart is visible to its owner only (another
 * user's cart answers 404 ECOMMERCE.CART_NOT_FOUND). Paths are absolute, so the wiring mounts the app at "/".
 */
import { type Context, Hono } from "hono";
import { type AuthEnv, requireAuth } from "../../../shared/auth/require_auth.ts";
import type { TokenVerifier } from "../../../shared/auth/verifier.ts";
import { readJson } from "../../../shared/http/json_body.ts";
import { installProblemHandlers } from "../../../shared/http/problem_response.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { changeItem, createCart, deleteCart, readCart } from "./cart_store.ts";
import { addItemSchema, createCartSchema, setItemSchema } from "./schemas.ts";

export interface CartRoutesDeps {
  readonly sql: Sql;
  readonly verifier: TokenVerifier;
}

/** The cart routes: `/api/v1/carts…`. */
export function createCartRoutes(deps: CartRoutesDeps): Hono {
  const { sql } = deps;
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);
  app.use("/api/v1/carts", requireAuth(deps.verifier));
  app.use("/api/v1/carts/*", requireAuth(deps.verifier));
  const userOf = (c: Context<AuthEnv>) => c.get("principal").userId;

  app.post("/api/v1/carts", async (c) => {
    // The body is optional; when sent it must be an empty JSON object.
    if (c.req.raw.body !== null && (await c.req.raw.clone().arrayBuffer()).byteLength > 0) {
      await readJson(c, createCartSchema);
    }
    const cart = await createCart(sql, userOf(c));
    return c.json(cart, 201, { location: `/api/v1/carts/${cart.id}` });
  });

  app.get("/api/v1/carts/:id", async (c) => c.json(await readCart(sql, userOf(c), c.req.param("id"))));

  app.delete("/api/v1/carts/:id", async (c) => {
    await deleteCart(sql, userOf(c), c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/api/v1/carts/:id/items", async (c) => {
    const cartId = c.req.param("id");
    const { productId, qty } = await readJson(c, addItemSchema);
    await changeItem(sql, userOf(c), cartId, productId, (current) => current + qty);
    return c.json(await readCart(sql, userOf(c), cartId));
  });

  app.put("/api/v1/carts/:id/items/:productId", async (c) => {
    const { qty } = await readJson(c, setItemSchema);
    await changeItem(sql, userOf(c), c.req.param("id"), c.req.param("productId"), () => qty);
    return c.body(null, 204);
  });

  app.delete("/api/v1/carts/:id/items/:productId", async (c) => {
    await changeItem(sql, userOf(c), c.req.param("id"), c.req.param("productId"), () => 0);
    return c.body(null, 204);
  });

  return app as unknown as Hono;
}

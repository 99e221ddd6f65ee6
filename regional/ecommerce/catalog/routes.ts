/**
 * @module
 * The catalog REST API (seed 003 section 4). Reads are public; writes need an ADMIN access token. Paths are
 * absolute, so the wiring mounts the app at "/".
 */
import { type Context, Hono } from "hono";
import { type AuthEnv, requireAuth } from "../../../shared/auth/require_auth.ts";
import type { TokenVerifier } from "../../../shared/auth/verifier.ts";
import { readJson } from "../../../shared/http/json_body.ts";
import { installProblemHandlers } from "../../../shared/http/problem_response.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { readQuery } from "./_query.ts";
import { readProductThroughCache } from "./product_cache.ts";
import {
  createProduct,
  getPriceHistory,
  isUuid,
  listProducts,
  productNotFound,
  updateProduct,
} from "./product_store.ts";
import {
  createProductSchema,
  listProductsQuerySchema,
  patchProductSchema,
  priceHistoryQuerySchema,
  PRODUCT_LIMITS,
  replaceProductSchema,
} from "./schemas.ts";

export interface CatalogRoutesDeps {
  readonly sql: Sql;
  readonly cache: Cache;
  readonly verifier: TokenVerifier;
  /** Wakes the outbox relay after a commit that appended events. */
  readonly nudgeOutbox: () => void;
}

/** The catalog routes: `/api/v1/products…`. */
export function createCatalogRoutes(deps: CatalogRoutesDeps): Hono {
  const { sql, cache, nudgeOutbox } = deps;
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);
  const admin = requireAuth(deps.verifier, { roles: ["ADMIN"] });

  app.post("/api/v1/products", admin, async (c) => {
    const body = await readJson(c, createProductSchema);
    const product = await createProduct(sql, body, c.get("principal").userId);
    nudgeOutbox();
    return c.json(product, 201, { location: `/api/v1/products/${product.id}` });
  });

  app.get("/api/v1/products", async (c) => {
    const query = readQuery(c, listProductsQuerySchema);
    return c.json(await listProducts(sql, query));
  });

  app.get("/api/v1/products/:id", async (c) => {
    return c.json(await readProductThroughCache(sql, cache, c.req.param("id")));
  });

  const replace = async (c: Context<AuthEnv>, partial: boolean) => {
    const id = c.req.param("id") ?? "";
    // An id that can name no product answers 404 before the body is judged, like GET does.
    if (!isUuid(id)) throw productNotFound(id);
    const changes = partial ? await readJson(c, patchProductSchema) : await readJson(c, replaceProductSchema);
    const product = await updateProduct(sql, id, changes, c.get("principal").userId);
    nudgeOutbox();
    return c.json(product);
  };
  app.put("/api/v1/products/:id", admin, (c) => replace(c, false));
  app.patch("/api/v1/products/:id", admin, (c) => replace(c, true));

  app.get("/api/v1/products/:id/price-history", async (c) => {
    const id = c.req.param("id");
    const { limit } = readQuery(c, priceHistoryQuerySchema);
    const items = await getPriceHistory(sql, id, limit ?? PRODUCT_LIMITS.HISTORY_ROWS_DEFAULT);
    return c.json({ productId: id.toLowerCase(), items });
  });

  return app as unknown as Hono;
}

/**
 * @module
 * The catalog REST API (seed 003 section 4). Reads are public; writes need an ADMIN access token. Paths are
 * absolute, so the wiring mounts the app at "/". A product answers with a strong ETag of its row version
 * (product_etag.ts); `If-Match` makes a replace or patch conditional on it, `If-None-Match` makes a read a 304.
 */
import { type Context, Hono } from "hono";
import { type AuthEnv, requireAuth } from "../../../shared/auth/require_auth.ts";
import type { TokenVerifier } from "../../../shared/auth/verifier.ts";
import { readJson } from "../../../shared/http/json_body.ts";
import { installProblemHandlers } from "../../../shared/http/problem_response.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { readQuery } from "./_query.ts";
import { readVersionedProductThroughCache } from "./product_cache.ts";
import { ifNoneMatchHits, parseIfMatch, productEtag } from "./product_etag.ts";
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
    const { product, version } = await createProduct(sql, body, c.get("principal").userId);
    nudgeOutbox();
    return c.json(product, 201, { location: `/api/v1/products/${product.id}`, etag: productEtag(version) });
  });

  app.get("/api/v1/products", async (c) => {
    const query = readQuery(c, listProductsQuerySchema);
    return c.json(await listProducts(sql, query));
  });

  app.get("/api/v1/products/:id", async (c) => {
    // The ETag comes with the product from the same read (a cache entry holds its version), never from a second one.
    const { product, version } = await readVersionedProductThroughCache(sql, cache, c.req.param("id"));
    const etag = productEtag(version);
    if (ifNoneMatchHits(c.req.header("if-none-match"), version)) return c.body(null, 304, { etag });
    return c.json(product, 200, { etag });
  });

  const replace = async (c: Context<AuthEnv>, partial: boolean) => {
    const id = c.req.param("id") ?? "";
    // An id that can name no product answers 404 before the body is judged, like GET does.
    if (!isUuid(id)) throw productNotFound(id);
    // Without If-Match the write applies to whatever version is current, as it always did (clients that predate
    // ETags depend on it); with it, to one of the versions it names.
    const ifMatch = c.req.header("if-match");
    const precondition = ifMatch === undefined ? undefined : parseIfMatch(ifMatch);
    const changes = partial ? await readJson(c, patchProductSchema) : await readJson(c, replaceProductSchema);
    const { product, version } = await updateProduct(sql, id, changes, c.get("principal").userId, precondition);
    nudgeOutbox();
    return c.json(product, 200, { etag: productEtag(version) });
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

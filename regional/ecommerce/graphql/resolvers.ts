/**
 * @module
 * Resolvers of the aggregated read API. They read only through the per-request loaders (no N+1) and the
 * catalog's `listProducts`; every failure leaves through {@linkcode clientErrorOf}, so the client sees a
 * problem code or a masked message, never a database error.
 */
import type { Context } from "hono";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Cache } from "../../../shared/ports/cache.ts";
import type { SqlExecutor } from "../../../shared/ports/sql.ts";
import { listProducts } from "../catalog/mod.ts";
import { withTimeout } from "./_timeout.ts";
import { clientErrorOf } from "./errors.ts";
import {
  createProductLoaders,
  emptyInventoryOf,
  type InventoryNode,
  LOADER_LIMITS,
  type ProductLoaders,
  type ProductNode,
  productNodeOf,
} from "./product_loaders.ts";

/** What one GraphQL request carries through its resolvers. */
export interface GraphqlRequestState {
  readonly sql: SqlExecutor;
  readonly loaders: ProductLoaders;
  /** Set when a resolver refused the client's input: the response is then a 400. */
  badInput: boolean;
}

export type GraphqlEnv = { Variables: { graphqlRequest: GraphqlRequestState } };
export type GraphqlContext = Context<GraphqlEnv>;

/** A product on its way to the client; `inventory` is present when it was read together (cache, aggregate). */
export type ProductSource = ProductNode & { readonly inventory?: InventoryNode };

/** Bounds of the `products` arguments (the catalog's own bounds). */
export const PRODUCTS_ARGS = Object.freeze({
  FIRST_DEFAULT: 20,
  FIRST_MAX: 100,
  QUERY_CHARS_MAX: 100,
  CATEGORY_CHARS_MAX: 64,
  CURSOR_CHARS_MAX: 512,
});

export function createRequestState(deps: { readonly sql: SqlExecutor; readonly cache: Cache }): GraphqlRequestState {
  return { sql: deps.sql, loaders: createProductLoaders(deps), badInput: false };
}

/** Wraps a resolver so its failures reach the client only as {@linkcode clientErrorOf} allows. */
function guarded<S, A, R>(
  fn: (source: S, args: A, state: GraphqlRequestState) => Promise<R>,
): (source: S, args: A, c: GraphqlContext) => Promise<R> {
  return async (source, args, c) => {
    const state = c.get("graphqlRequest");
    try {
      return await fn(source, args, state);
    } catch (error) {
      const visible = clientErrorOf(error);
      if (visible.badInput) state.badInput = true;
      throw visible.error;
    }
  };
}

interface ProductFilterArgs {
  readonly q?: string | null;
  readonly category?: string | null;
  readonly minPrice?: string | null;
  readonly maxPrice?: string | null;
}

interface ProductsArgs {
  readonly filter?: ProductFilterArgs | null;
  readonly first?: number | null;
  readonly after?: string | null;
}

function invalid(detail: string): ProblemError {
  return new ProblemError("COMMON.VALIDATION_FAILED", detail);
}

function checkLength(name: string, value: string | null | undefined, max: number): void {
  if (value != null && value.length > max) {
    throw invalid(`Argument "${name}" is ${value.length} characters long; use at most ${max}`);
  }
}

export const queryResolvers = Object.freeze({
  product: guarded<unknown, { id: string }, ProductSource | null>(async (_, { id }, state) => {
    const found = await state.loaders.aggregate.load(id);
    return found ? { ...found.product, inventory: found.inventory } : null;
  }),

  productInventory: guarded<unknown, { id: string }, InventoryNode | null>(async (_, { id }, state) => {
    return (await state.loaders.aggregate.load(id))?.inventory ?? null;
  }),

  products: guarded<unknown, ProductsArgs, { nodes: ProductSource[]; pageInfo: object }>(async (_, args, state) => {
    const first = args.first ?? PRODUCTS_ARGS.FIRST_DEFAULT;
    if (first < 1 || first > PRODUCTS_ARGS.FIRST_MAX) {
      throw invalid(`Argument "first" is ${first}; use 1 to ${PRODUCTS_ARGS.FIRST_MAX}`);
    }
    const filter = args.filter ?? {};
    checkLength("filter.q", filter.q, PRODUCTS_ARGS.QUERY_CHARS_MAX);
    checkLength("filter.category", filter.category, PRODUCTS_ARGS.CATEGORY_CHARS_MAX);
    checkLength("after", args.after, PRODUCTS_ARGS.CURSOR_CHARS_MAX);
    const page = await withTimeout(
      listProducts(state.sql, {
        ...(filter.q ? { q: filter.q } : {}),
        ...(filter.category ? { category: filter.category } : {}),
        ...(filter.minPrice ? { minPrice: filter.minPrice } : {}),
        ...(filter.maxPrice ? { maxPrice: filter.maxPrice } : {}),
        ...(args.after ? { cursor: args.after } : {}),
        limit: first,
      }),
      LOADER_LIMITS.SQL_TIMEOUT_MS,
      "products",
    );
    const nodes = page.items.map(productNodeOf);
    // A product(id) elsewhere in the same query then needs no second products query.
    for (const node of nodes) state.loaders.product.prime(node.id, node);
    return { nodes, pageInfo: { hasNextPage: page.nextCursor !== null, endCursor: page.nextCursor } };
  }),
});

export const productResolvers = Object.freeze({
  inventory: guarded<ProductSource, unknown, InventoryNode>(async (product, _, state) => {
    if (product.inventory) return product.inventory;
    return (await state.loaders.stock.load(product.id)) ?? emptyInventoryOf(product);
  }),
});

/**
 * @module
 * Per-request DataLoaders over the catalog and inventory reads, so a query that touches N products issues
 * one products query and one stock query, whatever its shape (aliases, lists, nested inventory). Loaders
 * are created per request: their memo never outlives the request, so no request sees another's data.
 */
import DataLoader from "dataloader";
import type { Cache } from "../../../shared/ports/cache.ts";
import type { SqlExecutor } from "../../../shared/ports/sql.ts";
import { getProductsByIds, type ProductView } from "../catalog/mod.ts";
import { getStockByProductIds } from "../inventory/mod.ts";
import { withTimeout } from "./_timeout.ts";
import { type FillGuard, lookUpCachedProduct, writeCachedProduct } from "./product_cache.ts";

/** A product as the GraphQL API shows it (no timestamps, no internal columns). */
export interface ProductNode {
  readonly id: string;
  readonly sku: string;
  readonly name: string;
  readonly description: string;
  readonly category: string;
  /** Decimal string, e.g. "129.50". */
  readonly price: string;
  readonly currency: string;
}

/** Stock of one product; a product the inventory has never counted has zero of everything. */
export interface InventoryNode {
  readonly productId: string;
  readonly sku: string;
  readonly onHand: number;
  readonly reserved: number;
  readonly available: number;
}

/** What `product(id)` and `productInventory(id)` answer, and what the cache holds. */
export interface ProductAggregate {
  readonly product: ProductNode;
  readonly inventory: InventoryNode;
}

export interface ProductLoaders {
  readonly product: DataLoader<string, ProductNode | null>;
  readonly stock: DataLoader<string, InventoryNode | null>;
  /** Product plus stock, read through the `gql:product:{id}` cache. */
  readonly aggregate: DataLoader<string, ProductAggregate | null>;
}

/** Bounds of the loaders. */
export const LOADER_LIMITS = Object.freeze({
  /** Ids per SQL query; the cost limit keeps a query far below this in practice. */
  BATCH_IDS_MAX: 100,
  /** Bound on each catalog or inventory read. */
  SQL_TIMEOUT_MS: 5_000,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The canonical form of a product id, or null when `id` cannot name a product (it is not a uuid). */
export function productIdOf(id: string): string | null {
  return UUID.test(id) ? id.toLowerCase() : null;
}

export function productNodeOf(view: ProductView): ProductNode {
  return {
    id: view.id,
    sku: view.sku,
    name: view.name,
    description: view.description,
    category: view.category,
    price: view.price,
    currency: view.currency,
  };
}

/** The stock of a product with no stock row yet: nothing on hand. */
export function emptyInventoryOf(product: ProductNode): InventoryNode {
  return { productId: product.id, sku: product.sku, onHand: 0, reserved: 0, available: 0 };
}

/** Creates the loaders of one request. */
export function createProductLoaders(deps: { readonly sql: SqlExecutor; readonly cache: Cache }): ProductLoaders {
  const options = { maxBatchSize: LOADER_LIMITS.BATCH_IDS_MAX, cacheKeyFn: (id: string) => id.toLowerCase() };
  // Which products query read each node (numbered as they start): a fill may store only a node read after its
  // guard was taken. A node primed from `products` (listProducts) or read by an earlier batch was not.
  let productReadsStarted = 0;
  const readBy = new WeakMap<ProductNode, number>();

  const product = new DataLoader<string, ProductNode | null>(async (ids) => {
    const read = ++productReadsStarted;
    const wanted = ids.map(productIdOf).filter((id): id is string => id !== null);
    const found = wanted.length === 0
      ? new Map<string, ProductView>()
      : await withTimeout(getProductsByIds(deps.sql, wanted), LOADER_LIMITS.SQL_TIMEOUT_MS, "products");
    return ids.map((id) => {
      const view = found.get(id.toLowerCase());
      if (!view) return null;
      const node = productNodeOf(view);
      readBy.set(node, read);
      return node;
    });
  }, options);

  const stock = new DataLoader<string, InventoryNode | null>(async (ids) => {
    const wanted = ids.map(productIdOf).filter((id): id is string => id !== null);
    const found = wanted.length === 0
      ? new Map()
      : await withTimeout(getStockByProductIds(deps.sql, wanted), LOADER_LIMITS.SQL_TIMEOUT_MS, "stock");
    return ids.map((id) => {
      const row = found.get(id.toLowerCase());
      if (!row) return null;
      return {
        productId: row.productId,
        sku: row.sku,
        onHand: Number(row.onHand),
        reserved: Number(row.reserved),
        available: Number(row.available),
      };
    });
  }, options);

  const aggregate = new DataLoader<string, ProductAggregate | null>(async (ids) => {
    const lookups = await Promise.all(
      ids.map((id) => {
        const canonical = productIdOf(id);
        return canonical === null ? null : lookUpCachedProduct(deps.cache, canonical);
      }),
    );
    // Every guard above was taken before this point; a products query that starts after it read after them.
    const readsBeforeGuards = productReadsStarted;
    const results: (ProductAggregate | null | undefined)[] = lookups.map((l) => l === null ? null : l.hit);
    const missIndexes = ids.flatMap((_, i) => results[i] === undefined ? [i] : []);
    const misses = missIndexes.map((i) => ids[i]);
    // Both loaders dispatch in the same tick: one products query and one stock query for every miss.
    const [products, stocks] = await Promise.all([product.loadMany(misses), stock.loadMany(misses)]);
    const fills: [ProductAggregate, FillGuard][] = [];
    missIndexes.forEach((index, i) => {
      const found = products[i];
      const counted = stocks[i];
      if (found instanceof Error) throw found;
      if (counted instanceof Error) throw counted;
      const value = found === null ? null : { product: found, inventory: counted ?? emptyInventoryOf(found) };
      results[index] = value;
      const lookup = lookups[index];
      const guard = lookup && !lookup.hit ? lookup.fill : undefined;
      // Absent products are not cached: a product created a moment later must show up at once. The stock needs
      // no read number of its own: its only other reader is `Product.inventory` on the nodes of a `products` list,
      // which primed those products first, so stock read before the guard comes with a product refused here.
      if (value && guard && (readBy.get(value.product) ?? 0) > readsBeforeGuards) fills.push([value, guard]);
    });
    await Promise.all(fills.map(([value, guard]) => writeCachedProduct(deps.cache, value, guard)));
    return results.map((value) => value ?? null);
  }, options);

  return { product, stock, aggregate };
}

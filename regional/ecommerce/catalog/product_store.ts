/**
 * @module
 * Catalog reads and writes over the SQL port. Every write that changes a product appends
 * `ecommerce.product.product.updated.v1` to the outbox in the same transaction, and a price (or currency)
 * change closes the current `product_price_history` row and opens the next one in that transaction too
 * (SCD2: `valid_to` of the old row equals `valid_from` of the new one, one instant read after the product's
 * row lock was taken, so the rows follow the order in which changes took the lock). A write may be conditional on
 * the version its client read (`If-Match`): the update statement itself names that version, so it cannot overwrite a
 * change it did not see.
 */
import { productUpdated } from "../../../shared/contracts/events/ecommerce.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql, SqlExecutor } from "../../../shared/ports/sql.ts";
import { SqlError } from "../../../shared/ports/sql_values.ts";
import { appendToOutbox, envelopeFor } from "../outbox/mod.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { productEtag, type VersionPrecondition } from "./product_etag.ts";
import { PRODUCT_LIMITS, type ProductChanges } from "./schemas.ts";

/** The public shape of a product (REST, GraphQL, orders). Money is a decimal string. */
export interface ProductView {
  readonly id: string;
  readonly sku: string;
  readonly name: string;
  readonly description: string;
  readonly category: string;
  readonly price: string;
  readonly currency: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** One SCD2 row of a product's price; `validTo` is null for the current price. */
export interface PriceHistoryRow {
  readonly price: string;
  readonly currency: string;
  readonly validFrom: string;
  readonly validTo: string | null;
  readonly changedBy: string;
}

/** Filter of {@linkcode listProducts}; prices are decimal strings, `limit` 1..100 (default 20). */
export interface ProductFilter {
  readonly q?: string;
  readonly category?: string;
  readonly minPrice?: string;
  readonly maxPrice?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

export interface NewProduct {
  readonly sku: string;
  readonly name: string;
  readonly description: string;
  readonly category: string;
  readonly price: string;
  readonly currency: string;
}

const PRODUCER = "catalog-service";
const PRICE_BOUND = /^\d{1,10}(\.\d{1,2})?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface ProductRow extends Record<string, unknown> {
  id: string;
  sku: string;
  name: string;
  description: string;
  category: string;
  price: string;
  currency: string;
  created_at: Date;
  updated_at: Date;
}

/** A row read with `products.version`, which grows by one with every change (the cache orders fills by it). */
interface VersionedProductRow extends ProductRow {
  version: number;
}

/** A product with the row version it was read at. */
export interface VersionedProduct {
  readonly product: ProductView;
  readonly version: number;
}

/** True when `value` is a UUID in its textual form (anything else can never name a product). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

function viewOf(row: ProductRow): ProductView {
  return {
    id: row.id,
    sku: row.sku,
    name: row.name,
    description: row.description,
    category: row.category,
    price: row.price,
    currency: row.currency,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** The products with these ids (unknown or malformed ids are simply absent from the map). */
export async function getProductsByIds(sql: SqlExecutor, ids: readonly string[]): Promise<Map<string, ProductView>> {
  const wanted = [...new Set(ids.filter(isUuid).map((id) => id.toLowerCase()))];
  if (wanted.length === 0) return new Map();
  const rows = await sql.query<ProductRow>`
    select id::text as id, sku, name, description, category, price::text as price, currency, created_at, updated_at
    from products where id = any(${wanted}::uuid[])`;
  return new Map(rows.map((row) => [row.id, viewOf(row)]));
}

/** What an order needs of a product: its current price. */
export interface ProductPrice {
  readonly price: string;
  readonly currency: string;
}

/**
 * The prices of the products with these ids (unknown or malformed ids are absent), for pricing an order: the
 * three columns it uses, not the whole view (descriptions and two timestamps parsed per line, per order).
 */
export async function getPricesByIds(sql: SqlExecutor, ids: readonly string[]): Promise<Map<string, ProductPrice>> {
  const wanted = [...new Set(ids.filter(isUuid).map((id) => id.toLowerCase()))];
  if (wanted.length === 0) return new Map();
  const rows = await sql.query<{ id: string; price: string; currency: string }>`
    select id::text as id, price::text as price, currency from products where id = any(${wanted}::uuid[])`;
  return new Map(rows.map((row) => [row.id, { price: row.price, currency: row.currency }]));
}

/** One product, or a 404 problem. */
export async function getProduct(sql: SqlExecutor, id: string): Promise<ProductView> {
  const found = (await getProductsByIds(sql, [id])).get(id.toLowerCase());
  if (!found) throw productNotFound(id);
  return found;
}

/** One product and its row version (what product.updated carries), or a 404 problem. */
export async function getVersionedProduct(sql: SqlExecutor, id: string): Promise<VersionedProduct> {
  if (!isUuid(id)) throw productNotFound(id);
  const [row] = await sql.query<VersionedProductRow>`
    select id::text as id, sku, name, description, category, price::text as price, currency, created_at, updated_at,
           version
    from products where id = ${id.toLowerCase()}::uuid`;
  if (!row) throw productNotFound(id);
  return { product: viewOf(row), version: row.version };
}

export function productNotFound(id: string): ProblemError {
  return new ProblemError(
    "ECOMMERCE.PRODUCT_NOT_FOUND",
    `Product "${id.slice(0, 64)}" does not exist; check the id or list products with GET /api/v1/products`,
  );
}

/** A page of products in sku order; `nextCursor` is null on the last page. */
export async function listProducts(
  sql: SqlExecutor,
  filter: ProductFilter,
): Promise<{ items: ProductView[]; nextCursor: string | null }> {
  assertValidFilter(filter);
  const limit = filter.limit ?? PRODUCT_LIMITS.PAGE_SIZE_DEFAULT;
  const after = filter.cursor === undefined ? null : decodeCursor(filter.cursor);
  // ILIKE wildcards in the user's text match themselves, not "anything".
  const pattern = filter.q ? `%${filter.q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%` : null;
  const rows = await sql.query<ProductRow>`
    select id::text as id, sku, name, description, category, price::text as price, currency, created_at, updated_at
    from products
    where (${after}::text is null or sku > ${after}::text)
      and (${pattern}::text is null or name ilike ${pattern}::text escape '\\' or description ilike ${pattern}::text escape '\\')
      and (${filter.category ?? null}::text is null or category = ${filter.category ?? null}::text)
      and (${filter.minPrice ?? null}::numeric is null or price >= ${filter.minPrice ?? null}::numeric)
      and (${filter.maxPrice ?? null}::numeric is null or price <= ${filter.maxPrice ?? null}::numeric)
    order by sku
    limit ${limit + 1}`;
  const items = rows.slice(0, limit).map(viewOf);
  const nextCursor = rows.length > limit ? encodeCursor(items[items.length - 1].sku) : null;
  return { items, nextCursor };
}

/** The same bounds as the REST query, for callers that do not come through it (GraphQL). */
function assertValidFilter(filter: ProductFilter): void {
  const fail = (detail: string) => {
    throw new ProblemError("COMMON.VALIDATION_FAILED", detail);
  };
  const limit = filter.limit ?? PRODUCT_LIMITS.PAGE_SIZE_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > PRODUCT_LIMITS.PAGE_SIZE_MAX) {
    fail(`Limit ${limit} is out of range; use 1 to ${PRODUCT_LIMITS.PAGE_SIZE_MAX}`);
  }
  if ((filter.q?.length ?? 0) > PRODUCT_LIMITS.QUERY_CHARS_MAX) {
    fail(`Search text is longer than ${PRODUCT_LIMITS.QUERY_CHARS_MAX} characters; shorten it`);
  }
  if ((filter.category?.length ?? 0) > PRODUCT_LIMITS.CATEGORY_CHARS_MAX) {
    fail(`Category is longer than ${PRODUCT_LIMITS.CATEGORY_CHARS_MAX} characters; shorten it`);
  }
  if (filter.q?.includes("\u0000") || filter.category?.includes("\u0000")) {
    fail("Search text and category cannot contain the NUL character (U+0000); remove it");
  }
  for (const [name, bound] of [["minPrice", filter.minPrice], ["maxPrice", filter.maxPrice]] as const) {
    if (bound !== undefined && !PRICE_BOUND.test(bound)) {
      fail(`${name} "${String(bound).slice(0, 32)}" is not a decimal amount; use one such as "10.00"`);
    }
  }
  if (
    filter.minPrice !== undefined && filter.maxPrice !== undefined && cents(filter.minPrice) > cents(filter.maxPrice)
  ) {
    fail(`minPrice "${filter.minPrice}" is above maxPrice "${filter.maxPrice}"; swap them or widen the range`);
  }
}

/** Creates a product with its first price-history row and a product.updated event, in one transaction. */
export async function createProduct(sql: Sql, product: NewProduct, actor: string): Promise<VersionedProduct> {
  try {
    return await sql.transaction(async (tx) => {
      const [row] = await tx.query<VersionedProductRow>`
        insert into products (id, sku, name, description, category, price, currency)
        values (${crypto.randomUUID()}, ${product.sku}, ${product.name}, ${product.description}, ${product.category},
                ${product.price}::numeric, ${product.currency})
        returning id::text as id, sku, name, description, category, price::text as price, currency, created_at,
                  updated_at, version`;
      await openPrice(tx, row.id, product.price, product.currency, actor);
      await announce(tx, row);
      return { product: viewOf(row), version: row.version };
    });
  } catch (error) {
    // The id is a fresh random UUID, so a unique violation on anything but the primary key is the sku.
    if (error instanceof SqlError && error.code === "23505" && error.detail?.constraint !== "products_pkey") {
      throw new ProblemError(
        "ECOMMERCE.SKU_TAKEN",
        `SKU "${product.sku}" is already used by another product; choose another SKU or update that product`,
      );
    }
    throw error;
  }
}

/**
 * Applies `changes` to product `id` under a row lock. A change that alters nothing writes nothing (no new
 * version, no event); otherwise the version goes up and the event is appended. With `precondition` listing
 * versions (`If-Match`), a product at none of them is a 412 problem and nothing is written, a no-op included.
 */
export async function updateProduct(
  sql: Sql,
  id: string,
  changes: ProductChanges,
  actor: string,
  precondition: VersionPrecondition = { any: true },
): Promise<VersionedProduct> {
  if (!isUuid(id)) throw productNotFound(id);
  // Null: any version. Otherwise the versions the update may apply to, checked by the update statement itself.
  const expected = "versions" in precondition ? [...precondition.versions] : null;
  return await sql.transaction(async (tx) => {
    const [current] = await tx.query<VersionedProductRow>`
      select id::text as id, sku, name, description, category, price::text as price, currency, created_at, updated_at,
             version
      from products where id = ${id}::uuid for update`;
    // A missing product is a 404 whatever If-Match says (RFC 9110 section 13.2.1: no precondition for a 404).
    if (!current) throw productNotFound(id);
    // Under the row lock, so no change can land between this check and the update; it also refuses a no-op.
    if (expected !== null && !expected.includes(current.version)) throw versionMismatch(id, current.version);
    const next = {
      name: changes.name ?? current.name,
      description: changes.description ?? current.description,
      category: changes.category ?? current.category,
      // Compare prices as numbers of cents: "10" and "10.00" are the same price.
      price: changes.price ?? current.price,
      currency: changes.currency ?? current.currency,
    };
    const priceChanged = cents(next.price) !== cents(current.price) || next.currency !== current.currency;
    const changed = priceChanged || next.name !== current.name || next.description !== current.description ||
      next.category !== current.category;
    if (!changed) return { product: viewOf(current), version: current.version };
    // The write names the version it builds on: the precondition holds in the statement that changes the row, not
    // only in the read before it (which holds it too, for as long as the lock above is taken).
    const [row] = await tx.query<VersionedProductRow>`
      update products set name = ${next.name}, description = ${next.description}, category = ${next.category},
        price = ${next.price}::numeric, currency = ${next.currency}, updated_at = now(), version = version + 1
      where id = ${id}::uuid and (${expected}::int[] is null or version = any(${expected}::int[]))
      returning id::text as id, sku, name, description, category, price::text as price, currency, created_at,
                updated_at, version`;
    if (!row) throw versionMismatch(id, current.version);
    if (priceChanged) await replacePrice(tx, id, next.price, next.currency, actor);
    await announce(tx, row);
    return { product: viewOf(row), version: row.version };
  });
}

function versionMismatch(id: string, current: number): ProblemError {
  return new ProblemError(
    "ECOMMERCE.PRODUCT_VERSION_MISMATCH",
    `Product "${id}" changed since you read it: If-Match names none of its current version ${productEtag(current)}; ` +
      `read it again with GET /api/v1/products/${id}, apply your change to what it shows and send its ETag`,
  );
}

/** The newest `limit` price rows of a product, newest first; a 404 problem when it does not exist. */
export async function getPriceHistory(sql: SqlExecutor, id: string, limit: number): Promise<PriceHistoryRow[]> {
  await getProduct(sql, id);
  const rows = await sql.query<{
    price: string;
    currency: string;
    valid_from: Date;
    valid_to: Date | null;
    changed_by: string;
  }>`
    select price::text as price, currency, valid_from, valid_to, changed_by from product_price_history
    where product_id = ${id}::uuid order by valid_from desc, id desc limit ${limit}`;
  return rows.map((r) => ({
    price: r.price,
    currency: r.currency,
    validFrom: r.valid_from.toISOString(),
    validTo: r.valid_to?.toISOString() ?? null,
    changedBy: r.changed_by,
  }));
}

/**
 * Closes the current price row and opens the next at one instant, read under the product's row lock. Not
 * `now()`: that is when the transaction began, and two changes can take the lock in the other order than
 * they began, which closed a row before it opened. `greatest` keeps the interval whole if the clock steps
 * back. The instant travels as text and is bound as text, which keeps its microseconds: a `Date` drops them,
 * and postgres.js makes a `timestamptz` parameter a `Date` first.
 */
async function replacePrice(tx: SqlExecutor, id: string, price: string, currency: string, actor: string) {
  const [closed] = await tx.query<{ at: string }>`
    update product_price_history set valid_to = greatest(clock_timestamp(), valid_from)
    where product_id = ${id}::uuid and valid_to is null
    returning valid_to::text as at`;
  // A product without a current row (not written by this module) still gets one, opened now.
  const at = closed?.at ?? (await tx.query<{ at: string }>`select clock_timestamp()::text as at`)[0].at;
  await openPrice(tx, id, price, currency, actor, at);
}

/** Opens a price row at `validFrom`; null is the transaction's `now()` (a new product, created in it). */
async function openPrice(
  tx: SqlExecutor,
  id: string,
  price: string,
  currency: string,
  actor: string,
  validFrom: string | null = null,
) {
  await tx.query`
    insert into product_price_history (product_id, price, currency, valid_from, changed_by)
    values (${id}::uuid, ${price}::numeric, ${currency}, coalesce(${validFrom}::text::timestamptz, now()), ${actor})`;
}

async function announce(tx: SqlExecutor, row: VersionedProductRow): Promise<void> {
  const payload = { productId: row.id, sku: row.sku, price: row.price, currency: row.currency, version: row.version };
  await appendToOutbox(tx, envelopeFor(productUpdated, payload, PRODUCER));
}

function cents(price: string): bigint {
  const [whole, fraction = ""] = price.split(".");
  return BigInt(whole) * 100n + BigInt(fraction.padEnd(2, "0").slice(0, 2));
}

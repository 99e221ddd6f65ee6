/**
 * @module
 * Carts over the SQL port. A cart belongs to one user: every lookup is by (id, user), so another user's cart
 * is indistinguishable from a missing one (404, never 403). Mutations lock the cart row, so concurrent
 * changes to one cart apply one after the other. Prices are never stored here: a cart shows the catalog's
 * current name and price, and holds one currency. Totals are summed in money units and formatted once, so a
 * line or cart total of any size reads back (a price can rise after the quantity was accepted).
 */
import { formatMoney, multiplyMoneyUnits } from "../../../shared/contracts/money.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql, SqlExecutor } from "../../../shared/ports/sql.ts";
import { getProductsByIds, type ProductView } from "../catalog/mod.ts";
import { CART_LIMITS } from "./schemas.ts";

/** One line of a cart, priced with the product's current price. */
export interface CartLine {
  readonly productId: string;
  readonly sku: string;
  readonly name: string;
  readonly unitPrice: string;
  readonly currency: string;
  readonly qty: number;
  readonly lineTotal: string;
}

/** A cart as the API shows it; `currency` is null while the cart is empty. */
export interface CartView {
  readonly id: string;
  readonly items: readonly CartLine[];
  readonly total: string;
  readonly currency: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

interface CartRow extends Record<string, unknown> {
  id: string;
  created_at: Date;
  updated_at: Date;
}

interface ItemRow extends Record<string, unknown> {
  product_id: string;
  qty: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function cartNotFound(id: string): ProblemError {
  return new ProblemError(
    "ECOMMERCE.CART_NOT_FOUND",
    `Cart "${id.slice(0, 64)}" does not exist; create one with POST /api/v1/carts`,
  );
}

function productNotFound(id: string): ProblemError {
  return new ProblemError(
    "ECOMMERCE.PRODUCT_NOT_FOUND",
    `Product "${id.slice(0, 64)}" does not exist; check the id or list products with GET /api/v1/products`,
  );
}

/**
 * Creates an empty cart for `userId`. At the per-user limit it first reclaims the user's oldest carts that are empty
 * and idle ({@linkcode reclaimIdleEmptyCarts}); only when there are none is it 409.
 */
export async function createCart(sql: Sql, userId: string): Promise<CartView> {
  return await sql.transaction(async (tx) => {
    // Serialises one user's cart creations so the per-user bound holds under concurrency.
    await tx.query`select pg_advisory_xact_lock(hashtext(${`cart:${userId}`}))`;
    const [{ n }] = await tx.query<{ n: number }>`select count(*)::int as n from carts where user_id = ${userId}`;
    const over = n - CART_LIMITS.CARTS_PER_USER_MAX + 1;
    // Throwing rolls back whatever was reclaimed: a refused creation deletes nothing.
    if (over > 0 && (await reclaimIdleEmptyCarts(tx, userId, over)) < over) {
      throw new ProblemError(
        "COMMON.CONFLICT",
        `You already have ${n} carts, the most allowed; reuse one of them or delete one with DELETE /api/v1/carts/{id}`,
      );
    }
    const [row] = await tx.query<CartRow>`
      insert into carts (id, user_id) values (${crypto.randomUUID()}, ${userId})
      returning id::text as id, created_at, updated_at`;
    return { id: row.id, items: [], total: "0.00", currency: null, ...timesOf(row) };
  });
}

/**
 * Deletes up to `count` of `userId`'s carts that hold no items and were last changed longer ago than
 * {@linkcode CART_LIMITS}.EMPTY_CART_RECLAIM_AFTER_MS (a checked-out cart, or one made and never used), oldest
 * first; resolves with how many it deleted.
 */
async function reclaimIdleEmptyCarts(tx: SqlExecutor, userId: string, count: number): Promise<number> {
  const idleMs = CART_LIMITS.EMPTY_CART_RECLAIM_AFTER_MS;
  // `updated_at` is checked again on the row itself: a change that commits while this runs (an item added, the
  // cart checked out) bumps it, and the delete, which waits for that row's lock, then re-reads the row and skips it
  // instead of deleting a cart that is no longer empty and idle.
  const rows = await tx.query`
    delete from carts where id in (
      select c.id from carts c
      where c.user_id = ${userId} and c.updated_at < now() - ${idleMs} * interval '1 millisecond'
        and not exists (select 1 from cart_items i where i.cart_id = c.id)
      order by c.updated_at, c.id
      limit ${count})
    and updated_at < now() - ${idleMs} * interval '1 millisecond'
    returning id`;
  return rows.length;
}

/** Deletes `userId`'s cart and its lines; 404 when it is not theirs (or does not exist). */
export async function deleteCart(sql: SqlExecutor, userId: string, cartId: string): Promise<void> {
  if (!UUID.test(cartId)) throw cartNotFound(cartId);
  // cart_items go with it (`on delete cascade`).
  const rows = await sql.query`delete from carts where id = ${cartId}::uuid and user_id = ${userId} returning id`;
  if (rows.length === 0) throw cartNotFound(cartId);
}

/** The cart with its lines priced now; 404 when it is not `userId`'s, 422 when its currencies differ. */
export async function readCart(sql: SqlExecutor, userId: string, cartId: string): Promise<CartView> {
  const cart = await findCart(sql, userId, cartId, false);
  return await viewOf(sql, cart);
}

/**
 * Sets the quantity of `productId` in the cart to `qtyOf(current)` (current is 0 when absent); 0 removes
 * the line. Checks that the product exists, the cart keeps one currency and stays within its bounds. The
 * cart is not priced here: a removal must commit even when the cart's currencies clash, to fix the clash.
 */
export async function changeItem(
  sql: Sql,
  userId: string,
  cartId: string,
  productId: string,
  qtyOf: (current: number) => number,
): Promise<void> {
  if (!UUID.test(productId)) throw productNotFound(productId);
  return await sql.transaction(async (tx) => {
    const cart = await findCart(tx, userId, cartId, true);
    const items = await itemsOf(tx, cart.id);
    const current = items.find((i) => i.product_id === productId.toLowerCase());
    const qty = qtyOf(current?.qty ?? 0);
    if (qty === 0) {
      await tx.query`delete from cart_items where cart_id = ${cart.id}::uuid and product_id = ${productId}::uuid`;
    } else {
      const products = await getProductsByIds(tx, [productId, ...items.map((i) => i.product_id)]);
      const product = products.get(productId.toLowerCase());
      if (!product) throw productNotFound(productId);
      assertOneCurrency(product, items, products);
      assertWithinBounds(product, qty, current === undefined ? items.length + 1 : items.length);
      if (qty > (current?.qty ?? 0)) assertTotalWithinLimit(product, qty, items, products);
      await tx.query`
        insert into cart_items (cart_id, product_id, qty) values (${cart.id}::uuid, ${product.id}::uuid, ${qty})
        on conflict (cart_id, product_id) do update set qty = excluded.qty`;
    }
    await tx.query`update carts set updated_at = now() where id = ${cart.id}::uuid`;
  });
}

/** The lines to check out, or null when the cart does not exist or is not `userId`'s. */
export async function getCartItemsForCheckout(
  sql: SqlExecutor,
  userId: string,
  cartId: string,
): Promise<{ productId: string; qty: number }[] | null> {
  if (!UUID.test(cartId)) return null;
  const [cart] = await sql.query`select 1 from carts where id = ${cartId}::uuid and user_id = ${userId}`;
  if (!cart) return null;
  return (await itemsOf(sql, cartId)).map((i) => ({ productId: i.product_id, qty: i.qty }));
}

/**
 * Takes the checked-out `lines` off a cart (after checkout), inside the caller's transaction. Only lines
 * still as they were read are removed: a product added, or a quantity changed, while the order was being
 * placed stays in the cart instead of vanishing without being ordered.
 */
export async function clearCart(
  tx: SqlExecutor,
  cartId: string,
  lines: readonly { readonly productId: string; readonly qty: number }[],
): Promise<void> {
  if (!UUID.test(cartId) || lines.length === 0) return;
  await tx.query`
    delete from cart_items c
    using unnest(${lines.map((l) => l.productId)}::uuid[], ${lines.map((l) => l.qty)}::int[]) as o (product_id, qty)
    where c.cart_id = ${cartId}::uuid and c.product_id = o.product_id and c.qty = o.qty`;
  await tx.query`update carts set updated_at = now() where id = ${cartId}::uuid`;
}

async function findCart(tx: SqlExecutor, userId: string, cartId: string, lock: boolean): Promise<CartRow> {
  if (!UUID.test(cartId)) throw cartNotFound(cartId);
  const rows = lock
    ? await tx.query<CartRow>`
        select id::text as id, created_at, updated_at from carts
        where id = ${cartId}::uuid and user_id = ${userId} for update`
    : await tx.query<CartRow>`
        select id::text as id, created_at, updated_at from carts where id = ${cartId}::uuid and user_id = ${userId}`;
  if (rows.length === 0) throw cartNotFound(cartId);
  return rows[0];
}

async function itemsOf(tx: SqlExecutor, cartId: string): Promise<ItemRow[]> {
  return await tx.query<ItemRow>`
    select product_id::text as product_id, qty from cart_items where cart_id = ${cartId}::uuid
    order by added_at, product_id`;
}

async function viewOf(tx: SqlExecutor, cart: CartRow): Promise<CartView> {
  const items = await itemsOf(tx, cart.id);
  const products = await getProductsByIds(tx, items.map((i) => i.product_id));
  let totalUnits = 0n;
  // Products are never deleted; a line whose product is missing is skipped rather than failing the cart.
  const lines: CartLine[] = items.flatMap((item) => {
    const p = products.get(item.product_id);
    if (!p) return [];
    const lineUnits = multiplyMoneyUnits(p.price, item.qty);
    totalUnits += lineUnits;
    return [{
      productId: p.id,
      sku: p.sku,
      name: p.name,
      unitPrice: p.price,
      currency: p.currency,
      qty: item.qty,
      lineTotal: formatMoney(lineUnits),
    }];
  });
  const currencies = [...new Set(lines.map((l) => l.currency))];
  if (currencies.length > 1) {
    throw new ProblemError(
      "ECOMMERCE.CURRENCY_MISMATCH",
      `Cart "${cart.id}" holds prices in ${currencies.map((c) => `"${c}"`).join(" and ")}; ` +
        `remove the products in one of them (${describeByCurrency(lines)})`,
    );
  }
  return {
    id: cart.id,
    items: lines,
    total: formatMoney(totalUnits),
    currency: currencies[0] ?? null,
    ...timesOf(cart),
  };
}

function assertOneCurrency(product: ProductView, items: readonly ItemRow[], products: Map<string, ProductView>) {
  const others = items.filter((i) => i.product_id !== product.id).map((i) => products.get(i.product_id)).filter(
    (p): p is ProductView => p !== undefined,
  );
  const clash = others.find((p) => p.currency !== product.currency);
  if (clash) {
    throw new ProblemError(
      "ECOMMERCE.CURRENCY_MISMATCH",
      `Product "${product.sku}" is priced in "${product.currency}" but the cart holds "${clash.currency}" ` +
        `("${clash.sku}"); use a separate cart for each currency`,
    );
  }
}

function assertWithinBounds(product: ProductView, qty: number, lines: number) {
  if (qty > CART_LIMITS.QTY_MAX) {
    throw new ProblemError(
      "COMMON.CONFLICT",
      `Cannot hold ${qty} of "${product.sku}": at most ${CART_LIMITS.QTY_MAX} per product; lower the quantity`,
    );
  }
  if (lines > CART_LIMITS.ITEMS_MAX) {
    throw new ProblemError(
      "COMMON.CONFLICT",
      `Cannot add "${product.sku}": a cart holds at most ${CART_LIMITS.ITEMS_MAX} products; check out or remove one`,
    );
  }
}

/**
 * Refuses an increase that takes the cart's total past what one order may total: such a cart could never be
 * checked out. Only increases are checked, so a cart whose prices rose past the limit can still be lowered.
 */
function assertTotalWithinLimit(
  product: ProductView,
  qty: number,
  items: readonly ItemRow[],
  products: Map<string, ProductView>,
) {
  let totalUnits = multiplyMoneyUnits(product.price, qty);
  for (const item of items) {
    const p = products.get(item.product_id);
    if (p && item.product_id !== product.id) totalUnits += multiplyMoneyUnits(p.price, item.qty);
  }
  if (totalUnits > CART_LIMITS.TOTAL_MAX_UNITS) {
    throw new ProblemError(
      "COMMON.CONFLICT",
      `Cannot hold ${qty} of "${product.sku}": the cart total would be "${formatMoney(totalUnits)}", over the ` +
        `${formatMoney(CART_LIMITS.TOTAL_MAX_UNITS)} one order may total; lower the quantity or use another cart`,
    );
  }
}

function describeByCurrency(lines: readonly CartLine[]): string {
  return lines.map((l) => `${l.productId} in ${l.currency}`).join(", ");
}

function timesOf(row: CartRow): { createdAt: string; updatedAt: string } {
  return { createdAt: row.created_at.toISOString(), updatedAt: row.updated_at.toISOString() };
}

/**
 * @module
 * Stock levels: reading them, and changing on_hand through adjustments (admin REST today, MQTT sensors
 * later). Every change of a stock row announces `ecommerce.inventory.stock.adjusted.v1` through the
 * outbox in the same transaction, so the cache projection (and any other reader of the topic) sees every
 * change. Stock never goes negative and never below what is reserved: checked here and by the table.
 */
import { z } from "zod";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { stockAdjusted } from "../../../shared/contracts/events/ecommerce.ts";
import type { SqlExecutor } from "../../../shared/ports/sql.ts";
import { appendToOutbox, envelopeFor } from "../outbox/mod.ts";

/** The producer name of every inventory event. */
export const INVENTORY_PRODUCER = "inventory-service";

/** What a reader sees of one product's stock. `available` is `onHand - reserved`. */
export interface StockView {
  readonly productId: string;
  readonly sku: string;
  readonly onHand: number;
  readonly reserved: number;
  readonly available: number;
}

/** Largest |delta| of one adjustment. */
export const ADJUSTMENT_DELTA_MAX = 1_000_000;
/** Largest on_hand of a product; far below the int4 column's limit, so no sum can overflow it. */
export const ON_HAND_MAX = 1_000_000_000;
/** Longest reason of an adjustment (the event payload allows 200 characters). */
export const ADJUSTMENT_REASON_CHARS_MAX = 200;
/** Most product ids read at once by {@linkcode getStockByProductIds}. */
export const STOCK_QUERY_IDS_MAX = 1_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID in its canonical text form (any version), the form Postgres returns. */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID.test(value);
}

/** A product id: a UUID, lower-cased so it matches what the database returns. */
export const productIdSchema = z.string().regex(UUID, "must be a UUID").transform((id) => id.toLowerCase());

/** One change of on_hand. */
export interface StockAdjustment {
  readonly productId: string;
  /** Non-zero, at most {@linkcode ADJUSTMENT_DELTA_MAX} either way. */
  readonly delta: number;
  readonly reason: string;
  /** Where it came from: `admin:<userId>`, `sensor:<deviceId>`, `reservation` … */
  readonly source: string;
  /** Set by at-least-once feeds: an adjustment with a message id seen before is not applied again. */
  readonly messageId?: string;
}

export interface StockAdjustmentResult {
  /** False when `messageId` had been applied before (nothing changed this time). */
  readonly applied: boolean;
  readonly stock: StockView;
}

const adjustmentSchema = z.object({
  productId: productIdSchema,
  delta: z.number().int().min(-ADJUSTMENT_DELTA_MAX).max(ADJUSTMENT_DELTA_MAX).refine((d) => d !== 0, {
    message: "must not be 0",
  }),
  reason: z.string().trim().min(1).max(ADJUSTMENT_REASON_CHARS_MAX),
  source: z.string().min(1).max(100),
  messageId: z.string().min(1).max(200).optional(),
});

interface StockRow extends Record<string, unknown> {
  product_id: string;
  sku: string;
  on_hand: number;
  reserved: number;
}

/** The view of a stock row. */
export function stockViewOf(row: StockRow): StockView {
  return stockView({ productId: row.product_id, sku: row.sku, onHand: row.on_hand, reserved: row.reserved });
}

/** The view of a product's counts, from a row or a `stock.adjusted` event: one rule for `available`. */
export function stockView(counts: Omit<StockView, "available">): StockView {
  const { productId, sku, onHand, reserved } = counts;
  return { productId, sku, onHand, reserved, available: onHand - reserved };
}

/**
 * Applies one adjustment inside `tx`, which must be a transaction (the stock row is locked until it
 * commits). Creates the stock row on a product's first adjustment. Throws `ECOMMERCE.PRODUCT_NOT_FOUND`
 * for an unknown product and `ECOMMERCE.STOCK_NEGATIVE` when on_hand would drop below 0 or below reserved.
 */
export async function applyStockAdjustment(
  tx: SqlExecutor,
  adjustment: StockAdjustment,
): Promise<StockAdjustmentResult> {
  const parsed = adjustmentSchema.safeParse(adjustment);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new ProblemError("COMMON.VALIDATION_FAILED", `Stock adjustment is not valid: ${issues}`);
  }
  const { productId, delta, reason, source, messageId } = parsed.data;
  const products = await tx.query<{ sku: string }>`select sku from products where id = ${productId}`;
  if (products.length === 0) {
    throw new ProblemError("ECOMMERCE.PRODUCT_NOT_FOUND", `No product has id "${productId}"; check the id`);
  }
  const sku = products[0].sku;
  await tx.query`
    insert into inventory_stock (product_id, sku) values (${productId}, ${sku}) on conflict (product_id) do nothing`;
  const [current] = await tx.query<StockRow>`
    select product_id::text as product_id, sku, on_hand, reserved from inventory_stock
    where product_id = ${productId} for update`;
  if (messageId !== undefined) {
    // Checked under the row lock, so two deliveries of one message cannot both pass.
    const seen = await tx.query`select 1 from inventory_adjustment where message_id = ${messageId}`;
    if (seen.length > 0) return { applied: false, stock: stockViewOf(current) };
  }
  const onHand = current.on_hand + delta;
  if (onHand < 0 || onHand < current.reserved) {
    throw new ProblemError(
      "ECOMMERCE.STOCK_NEGATIVE",
      `Cannot adjust "${sku}" by ${delta}: ${current.on_hand} on hand and ${current.reserved} reserved; ` +
        `on hand may not drop below ${current.reserved}`,
    );
  }
  if (onHand > ON_HAND_MAX) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `Cannot adjust "${sku}" by ${delta}: on hand would exceed the limit of ${ON_HAND_MAX}`,
    );
  }
  const inserted = await tx.query`
    insert into inventory_adjustment (product_id, delta, reason, source, message_id)
    values (${productId}, ${delta}, ${reason}, ${source}, ${messageId ?? null})
    on conflict (message_id) do nothing returning id`;
  // Only possible when the same message id arrived for another product: still a duplicate, still a no-op.
  if (inserted.length === 0) return { applied: false, stock: stockViewOf(current) };
  const [row] = await tx.query<StockRow>`
    update inventory_stock set on_hand = ${onHand}, sku = ${sku}, updated_at = now() where product_id = ${productId}
    returning product_id::text as product_id, sku, on_hand, reserved`;
  const stock = stockViewOf(row);
  await announceStock(tx, stock, delta, reason);
  return { applied: true, stock };
}

/** Appends `stock.adjusted` for a stock row that changed (`delta` is the change of on_hand, 0 for reservations). */
export async function announceStock(tx: SqlExecutor, stock: StockView, delta: number, reason: string): Promise<void> {
  await appendToOutbox(tx, stockAdjustedEnvelope(stock, delta, reason));
}

/** The `stock.adjusted` envelope announcing `stock` (the row after the change). */
export function stockAdjustedEnvelope(stock: StockView, delta: number, reason: string) {
  const payload = {
    productId: stock.productId,
    sku: stock.sku,
    delta,
    reason: reason.slice(0, ADJUSTMENT_REASON_CHARS_MAX),
    onHand: stock.onHand,
    reserved: stock.reserved,
  };
  return envelopeFor(stockAdjusted, payload, INVENTORY_PRODUCER);
}

/**
 * Stock of the known products among `ids`, keyed by (lower-case) product id. A product with no stock row
 * yet has 0 of everything; ids that are not UUIDs or not products are left out. One query for all ids.
 */
export async function getStockByProductIds(
  sql: SqlExecutor,
  ids: readonly string[],
): Promise<Map<string, StockView>> {
  const wanted = [...new Set(ids.filter(isUuid).map((id) => id.toLowerCase()))];
  if (wanted.length > STOCK_QUERY_IDS_MAX) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `Cannot read stock of ${wanted.length} products at once; ask for at most ${STOCK_QUERY_IDS_MAX}`,
    );
  }
  const result = new Map<string, StockView>();
  if (wanted.length === 0) return result;
  const rows = await sql.query<StockRow>`
    select p.id::text as product_id, p.sku, coalesce(s.on_hand, 0) as on_hand, coalesce(s.reserved, 0) as reserved
    from products p left join inventory_stock s on s.product_id = p.id
    where p.id = any(${wanted}::uuid[])`;
  for (const row of rows) result.set(row.product_id, stockViewOf(row));
  return result;
}

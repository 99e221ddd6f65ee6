/**
 * @module
 * The write side of flash sales: starting one (row + started event in one transaction) and ending those
 * whose time is up (ended_at + ended event in one transaction). Both append to the outbox; the caller
 * nudges the relay after the commit.
 */
import { flashSaleStarted } from "../../../shared/contracts/events/ecommerce.ts";
import { flashSaleEnded } from "../../../shared/contracts/events/pricing.ts";
import { formatMoney, parseMoney } from "../../../shared/contracts/money.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { getProductsByIds } from "../catalog/mod.ts";
import { appendToOutbox, envelopeFor } from "../outbox/mod.ts";
import type { StartFlashSaleRequest } from "./schemas.ts";

/** The producer named in envelopes (seed 003: the pricing service owns flash sales). */
export const FLASH_SALES_PRODUCER = "pricing-service";

/** What `POST /api/v1/flash-sales` answers. */
export interface FlashSaleView {
  readonly saleId: string;
  readonly productId: string;
  readonly price: string;
  readonly currency: string;
  readonly endsAt: string;
}

/**
 * Starts a sale: the product must exist, the price must be below its list price and the product must
 * have no sale running. The check and the insert are serialised per product by an advisory lock, so two
 * ADMINs starting at once cannot both win.
 */
export async function startFlashSale(
  sql: Sql,
  request: StartFlashSaleRequest,
  actor: string,
  nowMs: number,
): Promise<FlashSaleView> {
  const productId = request.productId.toLowerCase();
  const price = formatMoney(parseMoney(request.price));
  const startsAt = new Date(nowMs);
  const endsAt = new Date(nowMs + request.durationSec * 1000);
  return await sql.transaction(async (tx) => {
    await tx.query`select pg_advisory_xact_lock(hashtextextended(${`flash_sale:${productId}`}, 0))`;
    const product = (await getProductsByIds(tx, [productId])).get(productId);
    if (!product) {
      throw new ProblemError(
        "ECOMMERCE.PRODUCT_NOT_FOUND",
        `Product "${productId}" does not exist; check the id or list products with GET /api/v1/products`,
      );
    }
    if (parseMoney(price) >= parseMoney(product.price)) {
      const message = `must be below the list price "${product.price}" of product "${productId}"`;
      throw new ProblemError("COMMON.VALIDATION_FAILED", `Flash sale price "${price}" ${message}; lower it`, {
        errors: [{ path: "price", message }],
      });
    }
    const running = await tx.query<{ ends_at: Date }>`
      select ends_at from flash_sales
      where product_id = ${productId}::uuid and ended_at is null and ends_at > ${startsAt}
      order by ends_at desc limit 1`;
    if (running.length > 0) {
      throw new ProblemError(
        "COMMON.CONFLICT",
        `Product "${productId}" already has a flash sale until ${running[0].ends_at.toISOString()}; ` +
          "wait for it to end, then start the next one",
      );
    }
    const sale: FlashSaleView = {
      saleId: crypto.randomUUID(),
      productId,
      price,
      currency: product.currency,
      endsAt: endsAt.toISOString(),
    };
    await tx.query`
      insert into flash_sales (sale_id, product_id, price, currency, starts_at, ends_at, created_by)
      values (${sale.saleId}::uuid, ${productId}::uuid, ${price}::numeric, ${sale.currency}, ${startsAt}, ${endsAt},
              ${actor})`;
    await appendToOutbox(tx, envelopeFor(flashSaleStarted, sale, FLASH_SALES_PRODUCER));
    return sale;
  });
}

/**
 * Ends up to `batchSize` sales whose end time has passed: marks them and appends one ended event each, in
 * one transaction. Rows are claimed with `skip locked`, so several processes may sweep at once.
 * Resolves with how many sales it ended.
 */
export async function endDueSales(sql: Sql, options: { readonly nowMs: number; readonly batchSize: number }) {
  const now = new Date(options.nowMs);
  return await sql.transaction(async (tx) => {
    const due = await tx.query<{ sale_id: string; product_id: string }>`
      select sale_id::text as sale_id, product_id::text as product_id from flash_sales
      where ended_at is null and ends_at <= ${now}
      order by ends_at limit ${options.batchSize} for update skip locked`;
    if (due.length === 0) return 0;
    const ids = due.map((row) => row.sale_id);
    await tx.query`update flash_sales set ended_at = ${now} where sale_id = any(${ids}::uuid[])`;
    for (const row of due) {
      const payload = { saleId: row.sale_id, productId: row.product_id, endedAt: now.toISOString() };
      await appendToOutbox(tx, envelopeFor(flashSaleEnded, payload, FLASH_SALES_PRODUCER));
    }
    return due.length;
  });
}

/** When the next running sale ends (ms since the epoch), or null when none is running. */
export async function nextSaleEndMs(sql: Sql): Promise<number | null> {
  const rows = await sql.query<{ ends_at: Date | null }>`
    select min(ends_at) as ends_at from flash_sales where ended_at is null`;
  return rows[0]?.ends_at?.getTime() ?? null;
}

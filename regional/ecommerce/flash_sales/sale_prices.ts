/**
 * @module
 * The prices checkout charges during flash sales. `flash_price:{productId}` is the price authority while a sale
 * runs (seed 003 section 7: "cache authority, TTL"): a product whose key holds a sale is sold at that price, one
 * without is sold at its list price. The key is set by the projection when it consumes the started event, and the
 * same projection broadcasts the start on `/sse/flash-sales`, so a customer who heard of a sale finds it priced.
 *
 * When the cache cannot answer (Redis down or slow past its command timeout), the sales table answers instead:
 * it is the record the reconciler restores lost keys from, so it names the same running sales. Charging the list
 * price to a customer who came for a sale, because a cache blinked, would be the one wrong answer.
 */
import { parseMoney } from "../../../shared/contracts/money.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { Cache, SqlExecutor } from "../../../shared/ports/mod.ts";
import type { SalePrice, SalePrices } from "../contracts.ts";
import { type FlashPrice, flashPriceKey } from "./flash_price_projection.ts";

/** Reads running sales from `cache`, or from the `flash_sales` table in `sql` when the cache fails. */
export function createSalePrices(cache: Cache, sql: SqlExecutor, now: () => number = Date.now): SalePrices {
  return async (productIds) => {
    const ids = [...new Set(productIds.map((id) => id.toLowerCase()))];
    if (ids.length === 0) return new Map();
    let values: (string | null)[];
    try {
      values = await Promise.all(ids.map((id) => cache.get(flashPriceKey(id))));
    } catch (error) {
      log.warn("flash prices unreadable in the cache; checkout reads the running sales from the table", {
        error: String(error),
      });
      return await runningSalesInTable(sql, ids, now());
    }
    const prices = new Map<string, SalePrice>();
    ids.forEach((id, i) => {
      const sale = saleOf(values[i], id, now());
      if (sale) prices.set(id, sale);
    });
    return prices;
  };
}

/** The sale a cached value holds for `productId`, if it is well formed, its product's and not past its end. */
function saleOf(text: string | null, productId: string, nowMs: number): SalePrice | undefined {
  if (text === null) return undefined;
  let value: Partial<FlashPrice>;
  try {
    value = JSON.parse(text);
  } catch {
    value = {};
  }
  const { saleId, price, currency, endsAt } = value;
  if (
    typeof saleId !== "string" || typeof price !== "string" || !isPrice(price) || typeof currency !== "string" ||
    typeof endsAt !== "string" || value.productId?.toLowerCase() !== productId
  ) {
    log.warn("a flash price entry is not a sale of its product; the list price applies", { productId });
    return undefined;
  }
  // The TTL ends the key at the sale's end; a clock-skewed Redis may keep it a moment longer.
  if (!(Date.parse(endsAt) > nowMs)) return undefined;
  return { saleId, price, currency };
}

/** A decimal amount above zero that checkout can charge (a sale's price is one when it starts). */
function isPrice(text: string): boolean {
  try {
    return parseMoney(text) > 0n;
  } catch {
    return false;
  }
}

async function runningSalesInTable(
  sql: SqlExecutor,
  ids: readonly string[],
  nowMs: number,
): Promise<Map<string, SalePrice>> {
  const at = new Date(nowMs);
  const rows = await sql.query<{ product_id: string; sale_id: string; price: string; currency: string }>`
    select product_id::text as product_id, sale_id::text as sale_id, price::text as price, currency
    from flash_sales
    where product_id = any(${ids}::uuid[]) and ended_at is null and starts_at <= ${at} and ends_at > ${at}`;
  return new Map(rows.map((r) => [r.product_id, { saleId: r.sale_id, price: r.price, currency: r.currency }]));
}

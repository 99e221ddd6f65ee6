/**
 * @module
 * Flash sales (seed 003 "pricing"): an ADMIN starts a sale, the cache holds its price until it ends
 * (`flash_price:{productId}` with a TTL), and `/sse/flash-sales` tells every subscriber of the region when
 * sales start and end.
 */
export { flashSalesMigrations } from "./migrations.ts";
export {
  FLASH_SALE_TOPICS,
  type FlashSales,
  type FlashSalesDeps,
  type FlashSalesOptions,
  startFlashSales,
} from "./start_flash_sales.ts";
export { type FlashPrice, flashPriceKey } from "./flash_price_projection.ts";
export type { FlashSaleView } from "./flash_sale_store.ts";
export { createSalePrices } from "./sale_prices.ts";
export { FLASH_SALE_LIMITS } from "./schemas.ts";

/** @module Request schemas and the limits of the flash-sales context. */
import { z } from "zod";
import { parseMoney } from "../../../shared/contracts/money.ts";

/** Every bound of the context, named once. */
export const FLASH_SALE_LIMITS = Object.freeze({
  /** A flash sale is short by definition; a week covers any "weekend deal". */
  DURATION_SEC_MAX: 7 * 24 * 3600,
  /** products.price is numeric(12, 2): at most 10 integer digits and 2 decimals. */
  PRICE_INTEGER_DIGITS_MAX: 10,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `value` can name a product (products are keyed by uuid). */
export function isProductId(value: string): boolean {
  return UUID.test(value);
}

const PRICE = new RegExp(`^\\d{1,${FLASH_SALE_LIMITS.PRICE_INTEGER_DIGITS_MAX}}(\\.\\d{1,2})?$`);

/** `POST /api/v1/flash-sales`. */
export const startFlashSaleSchema = z.strictObject({
  productId: z.string().max(64).regex(UUID, 'must be a product id (a UUID such as "0b0f…")'),
  price: z.string()
    .regex(PRICE, 'must be a decimal string with at most 2 decimals, such as "19.99"')
    .refine((price) => !PRICE.test(price) || parseMoney(price) > 0n, "must be greater than 0"),
  durationSec: z.number().int().min(1).max(FLASH_SALE_LIMITS.DURATION_SEC_MAX),
});

export type StartFlashSaleRequest = z.infer<typeof startFlashSaleSchema>;

/**
 * @module
 * Request schemas of the catalog REST API. Bodies are strict (unknown fields are rejected) and every
 * string and number is bounded, so any bad input becomes a 400 problem, never a 5xx.
 */
import { z } from "zod";

/** Bounds of product fields; `SKU_CHARS_MAX` matches the product.updated event schema. */
export const PRODUCT_LIMITS = Object.freeze({
  SKU_CHARS_MAX: 64,
  NAME_CHARS_MAX: 200,
  DESCRIPTION_CHARS_MAX: 5_000,
  CATEGORY_CHARS_MAX: 64,
  QUERY_CHARS_MAX: 100,
  PAGE_SIZE_DEFAULT: 20,
  PAGE_SIZE_MAX: 100,
  HISTORY_ROWS_DEFAULT: 100,
  HISTORY_ROWS_MAX: 500,
});

/** numeric(12,2): at most 10 integer digits and 2 fraction digits. */
const PRICE = /^\d{1,10}(\.\d{1,2})?$/;

export const priceSchema = z
  .string()
  .regex(PRICE, 'Use a decimal string with at most 2 decimals, such as "129.50"')
  .refine((p) => /[1-9]/.test(p), "Price must be greater than zero");

/** A price bound in a filter may be zero. */
const priceBoundSchema = z.string().regex(PRICE, 'Use a decimal string with at most 2 decimals, such as "10.00"');

export const currencySchema = z.string().regex(/^[A-Z]{3}$/, 'Use an ISO 4217 code such as "EUR"');

const skuSchema = z
  .string()
  .regex(
    new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${PRODUCT_LIMITS.SKU_CHARS_MAX - 1}}$`),
    `Use 1 to ${PRODUCT_LIMITS.SKU_CHARS_MAX} letters, digits, ".", "_" or "-", starting with a letter or digit`,
  );

/** PostgreSQL text cannot hold U+0000; refusing it here keeps it a 400 instead of a database error. */
const NO_NUL = [(s: string) => !s.includes("\u0000"), "Remove the NUL character (U+0000)"] as const;

/** Text of `min`..`max` characters without NUL. */
export function textSchema(min: number, max: number) {
  return z.string().min(min).max(max).refine(...NO_NUL);
}

const mutableFields = {
  name: z.string().trim().min(1).max(PRODUCT_LIMITS.NAME_CHARS_MAX).refine(...NO_NUL),
  description: textSchema(0, PRODUCT_LIMITS.DESCRIPTION_CHARS_MAX),
  category: z.string().trim().min(1).max(PRODUCT_LIMITS.CATEGORY_CHARS_MAX).refine(...NO_NUL),
  price: priceSchema,
  currency: currencySchema,
};

/** `POST /api/v1/products`; the description may be left out. */
export const createProductSchema = z.strictObject({
  sku: skuSchema,
  ...mutableFields,
  description: mutableFields.description.default(""),
});

/** `PUT /api/v1/products/{id}`: every mutable field (the sku is the product's identity and never changes). */
export const replaceProductSchema = z.strictObject(mutableFields);

/** `PATCH /api/v1/products/{id}`: any non-empty subset of the mutable fields. */
export const patchProductSchema = z
  .strictObject({
    name: mutableFields.name.optional(),
    description: mutableFields.description.optional(),
    category: mutableFields.category.optional(),
    price: mutableFields.price.optional(),
    currency: mutableFields.currency.optional(),
  })
  .refine((patch) => Object.values(patch).some((v) => v !== undefined), "Send at least one field to change");

export type ProductChanges = z.infer<typeof patchProductSchema>;

/** `GET /api/v1/products` query parameters (strict: a misspelt filter is an error, not ignored). */
export const listProductsQuerySchema = z
  .strictObject({
    q: textSchema(0, PRODUCT_LIMITS.QUERY_CHARS_MAX).optional(),
    category: textSchema(1, PRODUCT_LIMITS.CATEGORY_CHARS_MAX).optional(),
    minPrice: priceBoundSchema.optional(),
    maxPrice: priceBoundSchema.optional(),
    limit: z
      .string()
      .regex(/^\d{1,3}$/, `Use a whole number from 1 to ${PRODUCT_LIMITS.PAGE_SIZE_MAX}`)
      .transform(Number)
      .pipe(z.number().int().min(1).max(PRODUCT_LIMITS.PAGE_SIZE_MAX))
      .optional(),
    cursor: z.string().min(1).max(512).optional(),
  });

/** `GET /api/v1/products/{id}/price-history` query parameters. */
export const priceHistoryQuerySchema = z.strictObject({
  limit: z
    .string()
    .regex(/^\d{1,3}$/, `Use a whole number from 1 to ${PRODUCT_LIMITS.HISTORY_ROWS_MAX}`)
    .transform(Number)
    .pipe(z.number().int().min(1).max(PRODUCT_LIMITS.HISTORY_ROWS_MAX))
    .optional(),
});

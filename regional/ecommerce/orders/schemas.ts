/** @module Request schemas and limits of the order endpoints (strict: unknown fields are rejected). */
import { z } from "zod";

/** Every bound of the order API in one place. */
export const ORDER_LIMITS = Object.freeze({
  itemsMax: 50,
  qtyMax: 1_000,
  pageSizeMax: 100,
  pageSizeDefault: 20,
  reasonCharsMax: 200,
  cursorCharsMax: 200,
});

/** Product ids are UUIDs, compared in lower case (the catalog's spelling). */
const productId = z.uuid().transform((id) => id.toLowerCase());

const orderLine = z.strictObject({
  productId,
  qty: z.number().int().min(1).max(ORDER_LIMITS.qtyMax),
});

const fromItems = z.strictObject({
  items: z.array(orderLine).min(1).max(ORDER_LIMITS.itemsMax).refine(
    (items) => new Set(items.map((i) => i.productId)).size === items.length,
    { message: "each productId may appear once; add up the quantities instead" },
  ),
});

const fromCart = z.strictObject({ cartId: z.uuid().transform((id) => id.toLowerCase()) });

/** `POST /api/v1/orders`: either explicit items or a cart to check out. */
export const placeOrderBody = z.union([fromItems, fromCart]);

export type PlaceOrderBody = z.infer<typeof placeOrderBody>;

/** The regex behind `z.uuid()`, so the hand check below accepts exactly the ids the schema accepts. */
const UUID = z.regexes.uuid();

/**
 * `placeOrderBody`'s output for the common body (`{ items }` with valid, distinct lines), checked by hand: a
 * zod parse of it was ~20 µs of CPU per order. Undefined for anything else, which the schema then parses (and
 * words the error for), so it only ever accepts what the schema accepts.
 */
export function quickPlaceOrderBody(value: unknown): PlaceOrderBody | undefined {
  if (!isPlainRecord(value) || !hasExactlyKeys(value, "items")) return undefined;
  const items = value.items;
  if (!Array.isArray(items) || items.length < 1 || items.length > ORDER_LIMITS.itemsMax) return undefined;
  const lines: { productId: string; qty: number }[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (!isPlainRecord(item) || !hasExactlyKeys(item, "productId", "qty")) return undefined;
    const { productId, qty } = item;
    if (typeof productId !== "string" || !UUID.test(productId)) return undefined;
    if (!Number.isInteger(qty) || (qty as number) < 1 || (qty as number) > ORDER_LIMITS.qtyMax) return undefined;
    const id = productId.toLowerCase();
    seen.add(id);
    lines.push({ productId: id, qty: qty as number });
  }
  return seen.size === lines.length ? { items: lines } : undefined;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function hasExactlyKeys(value: Record<string, unknown>, ...names: string[]): boolean {
  const keys = Object.keys(value);
  return keys.length === names.length && names.every((name) => Object.hasOwn(value, name));
}

/** `POST /api/v1/orders/{id}/cancel` (the body is optional). */
export const cancelOrderBody = z.strictObject({
  reason: z.string().trim().min(1).max(ORDER_LIMITS.reasonCharsMax).optional(),
});

/** `GET /api/v1/orders?mine&limit&cursor`. */
export const listOrdersQuery = z.strictObject({
  mine: z.string().max(5).optional(),
  limit: z.coerce.number().int().min(1).max(ORDER_LIMITS.pageSizeMax).default(ORDER_LIMITS.pageSizeDefault),
  cursor: z.string().min(1).max(ORDER_LIMITS.cursorCharsMax).optional(),
});

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

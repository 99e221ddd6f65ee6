/**
 * @module
 * Pricing event types beyond seed 003 section 6: the end of a flash sale. Its start,
 * `ecommerce.pricing.flash_sale.started.v1`, is declared with the other e-commerce events in `ecommerce.ts`.
 */
import { z } from "zod";
import { defineEvent } from "../envelope.ts";

const id = z.string().min(1).max(64);

/**
 * A flash sale reached its end time: its price no longer applies. Keyed by productId like `started`, so a
 * product's starts and ends stay in order on one partition.
 */
export const flashSaleEnded = defineEvent({
  eventType: "ecommerce.pricing.flash_sale.ended.v1",
  schemaVersion: "1.0",
  payload: z.object({ saleId: id, productId: id, endedAt: z.iso.datetime() }),
  partitionKeyOf: (p) => p.productId,
});

/**
 * @module
 * E-commerce event types of seed 003 section 6, declared once. Money is a decimal string (never a float)
 * with its ISO 4217 currency.
 */
import { z } from "zod";
import { defineEvent } from "../envelope.ts";

const id = z.string().min(1).max(64);
const money = z.string().regex(/^-?\d{1,12}(\.\d{1,4})?$/, 'a decimal string such as "129.50"');
const currency = z.string().regex(/^[A-Z]{3}$/);
const orderRef = { orderId: id, userId: id };

export const orderCreated = defineEvent({
  eventType: "ecommerce.order.order.created.v1",
  schemaVersion: "1.0",
  payload: z.object({
    ...orderRef,
    totalAmount: money,
    currency,
    items: z.array(z.object({ productId: id, qty: z.number().int().positive(), price: money })).min(1),
  }),
  partitionKeyOf: (p) => p.orderId,
});

export const orderPaid = defineEvent({
  eventType: "ecommerce.order.order.paid.v1",
  schemaVersion: "1.0",
  payload: z.object({ ...orderRef, amount: money, currency, authCode: z.string().max(64) }),
  partitionKeyOf: (p) => p.orderId,
});

export const orderCanceled = defineEvent({
  eventType: "ecommerce.order.order.canceled.v1",
  schemaVersion: "1.0",
  payload: z.object({ ...orderRef, reason: z.string().max(500) }),
  partitionKeyOf: (p) => p.orderId,
});

export const orderFulfilled = defineEvent({
  eventType: "ecommerce.order.order.fulfilled.v1",
  schemaVersion: "1.0",
  payload: z.object(orderRef),
  partitionKeyOf: (p) => p.orderId,
});

export const stockAdjusted = defineEvent({
  eventType: "ecommerce.inventory.stock.adjusted.v1",
  schemaVersion: "1.0",
  payload: z.object({
    productId: id,
    sku: z.string().min(1).max(64),
    delta: z.number().int(),
    reason: z.string().max(200),
    onHand: z.number().int().nonnegative(),
    reserved: z.number().int().nonnegative(),
  }),
  partitionKeyOf: (p) => p.productId,
});

export const productUpdated = defineEvent({
  eventType: "ecommerce.product.product.updated.v1",
  schemaVersion: "1.0",
  payload: z.object({
    productId: id,
    sku: z.string().min(1).max(64),
    price: money,
    currency,
    // products.version after the change. Optional: events written before it was added carry none.
    version: z.number().int().positive().optional(),
  }),
  partitionKeyOf: (p) => p.productId,
});

export const flashSaleStarted = defineEvent({
  eventType: "ecommerce.pricing.flash_sale.started.v1",
  schemaVersion: "1.0",
  payload: z.object({ saleId: id, productId: id, price: money, currency, endsAt: z.iso.datetime() }),
  partitionKeyOf: (p) => p.productId,
});

export const webhookDeliveryFailed = defineEvent({
  eventType: "ecommerce.webhook.delivery.failed.v1",
  schemaVersion: "1.0",
  payload: z.object({ subscriptionId: id, eventId: z.uuid(), attempts: z.number().int(), lastError: z.string() }),
  partitionKeyOf: (p) => p.subscriptionId,
});

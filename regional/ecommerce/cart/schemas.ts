/** @module Request schemas and bounds of the cart REST API (strict bodies: unknown fields are rejected). */
import { z } from "zod";
import { AMOUNT_MAX_UNITS } from "../../../shared/contracts/money.ts";

export const CART_LIMITS = Object.freeze({
  /** Units of one product in a cart (the `cart_items.qty` check). */
  QTY_MAX: 1_000,
  /** Distinct products in one cart. */
  ITEMS_MAX: 100,
  /**
   * Carts one user may hold: it bounds what a user can make us store. At the limit, creating a cart first
   * reclaims the user's oldest empty cart idle for {@linkcode CART_LIMITS.EMPTY_CART_RECLAIM_AFTER_MS}: checkout
   * empties a cart without deleting it, so a client that makes a cart per checkout would otherwise be refused for good.
   */
  CARTS_PER_USER_MAX: 1_000,
  /**
   * How long an empty cart must have been left unchanged before a new cart may take its place (above). Longer than a
   * shopping session, so a cart a client just made or just checked out is never taken from under it.
   */
  EMPTY_CART_RECLAIM_AFTER_MS: 24 * 60 * 60 * 1000,
  /**
   * A cart's total, in money units (10^-4): the most one order may total (`numeric(12, 2)`), so a cart that
   * is accepted can be checked out. Only increases are refused; a price rise can still take a cart past it.
   */
  TOTAL_MAX_UNITS: AMOUNT_MAX_UNITS,
});

const qty = z.number().int().min(1).max(CART_LIMITS.QTY_MAX);

/** `POST /api/v1/carts` takes no fields (an empty object, or no body at all). */
export const createCartSchema = z.strictObject({});

/** `POST /api/v1/carts/{id}/items`: adds `qty` units (to any already there). */
export const addItemSchema = z.strictObject({ productId: z.uuid(), qty });

/** `PUT /api/v1/carts/{id}/items/{productId}`: sets the quantity; 0 removes the line. */
export const setItemSchema = z.strictObject({ qty: z.number().int().min(0).max(CART_LIMITS.QTY_MAX) });

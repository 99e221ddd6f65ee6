/**
 * @module
 * What the order context needs from the other e-commerce contexts, as small interfaces. Implementations
 * cross a real protocol: stock reservations go over gRPC to inventory, payments over SOAP (with a REST
 * fallback) to the legacy gateway. Orders depend on these interfaces only.
 */

export interface ReservationItem {
  readonly productId: string;
  readonly qty: number;
}

export type ReserveOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly productId: string; readonly requested: number; readonly available: number };

/** Implemented by the inventory gRPC client (`inventory/client.ts`). Every method is idempotent. */
export interface StockReservations {
  /**
   * Reserves every item or none (one transaction). Idempotent by `reservationId` (the order id): a
   * repeated call with the same id returns the first outcome. The reservation lapses after `ttlSec`
   * unless confirmed.
   */
  reserve(input: {
    readonly reservationId: string;
    readonly items: readonly ReservationItem[];
    readonly ttlSec: number;
  }): Promise<ReserveOutcome>;
  /** Releases a reservation (cancel, payment failure). Releasing an unknown or released one is a no-op. */
  release(reservationId: string): Promise<void>;
  /** Payment succeeded: the reservation no longer lapses. */
  confirm(reservationId: string): Promise<void>;
  /** Fulfilled: reserved units leave the warehouse (on hand and reserved both go down). */
  commit(reservationId: string): Promise<void>;
}

export interface PaymentRequest {
  readonly orderId: string;
  /** Decimal string, e.g. "129.50". */
  readonly amount: string;
  readonly currency: string;
}

export type PaymentResult =
  | { readonly status: "APPROVED"; readonly authCode: string; readonly via: "soap" | "rest-fallback" }
  | { readonly status: "DECLINED"; readonly reason: string; readonly via: "soap" | "rest-fallback" };

/**
 * Implemented by the payment adapter (`payment/`). Throws `ProblemError` `ECOMMERCE.PAYMENT_UNAVAILABLE`
 * when neither the SOAP gateway nor its REST fallback answered within the policy. Idempotent by orderId at
 * the gateway: a retried charge never charges twice.
 */
export interface PaymentGateway {
  charge(request: PaymentRequest): Promise<PaymentResult>;
}

/** A flash sale's price of one product, as checkout charges it. */
export interface SalePrice {
  readonly saleId: string;
  /** Decimal string in `currency`, below the product's list price. */
  readonly price: string;
  readonly currency: string;
}

/**
 * The running flash sales of `productIds` (lowercase ids), keyed by product id; a product without a sale is
 * absent. Implemented by the flash-sales context (`flash_sales/sale_prices.ts`): `flash_price:{productId}` is
 * the price authority while a sale runs (seed 003 section 7). Throws when neither the cache nor the sales table
 * could answer: checkout then refuses (503) rather than charge a price it cannot know.
 */
export type SalePrices = (productIds: readonly string[]) => Promise<ReadonlyMap<string, SalePrice>>;

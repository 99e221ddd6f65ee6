/**
 * @module
 * The simulated gateway's books: validates a charge, applies the decline rules and remembers each order's
 * first result so a repeated charge never moves money twice. Shared by the SOAP and the REST front ends,
 * so both paths are idempotent together (a retry over REST after a lost SOAP answer replays it).
 */
import { z } from "zod";
import { formatMoney, parseMoney } from "../../../../shared/contracts/money.ts";

/** Amounts above this are declined: the legacy system's single-charge limit. */
export const CHARGE_AMOUNT_MAX = "10000.00";
/** Orders remembered for idempotency; past it the oldest is forgotten (a simulator, not a bank). */
export const LEDGER_ORDERS_MAX = 100_000;

export const chargeRequestSchema = z.strictObject({
  orderId: z.string().min(1).max(64).regex(/^[A-Za-z0-9._:-]+$/, "letters, digits and . _ : - only"),
  amount: z.string().regex(/^\d{1,10}\.\d{2}$/, 'a decimal amount with two fraction digits, e.g. "129.50"'),
  currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as "USD"'),
});
export type ChargeRequest = z.infer<typeof chargeRequestSchema>;

export type ChargeResult =
  | { readonly status: "APPROVED"; readonly authCode: string }
  | { readonly status: "DECLINED"; readonly reason: string };

/** The order was already charged with a different amount or currency: never silently replayed. */
export class ChargeConflictError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "ChargeConflictError";
  }
}

/** Why an amount is declined, or undefined when it is approved. These rules are documented in the README. */
export function declineReasonOf(amount: string): string | undefined {
  const units = parseMoney(amount);
  if (units <= 0n) return `Amount "${amount}" must be greater than zero`;
  if (units > parseMoney(CHARGE_AMOUNT_MAX)) return `Amount "${amount}" exceeds the ${CHARGE_AMOUNT_MAX} limit`;
  // Test rule, as card networks' sandboxes have: a magic amount declines.
  if (amount.endsWith(".13")) return `Card declined by issuer (simulator rule: amount "${amount}" ends in .13)`;
  return undefined;
}

export interface ChargeLedger {
  /** Charges once per order; a repeat with the same amount and currency returns the first result. */
  charge(request: ChargeRequest): ChargeResult;
  /** Approved charges made (money moved), each counted once. */
  approved(): number;
}

export function createChargeLedger(options: { readonly random: () => number }): ChargeLedger {
  const orders = new Map<string, { amount: string; currency: string; result: ChargeResult }>();
  let approved = 0;
  return {
    charge(request) {
      const amount = formatMoney(parseMoney(request.amount));
      const first = orders.get(request.orderId);
      if (first) {
        if (first.amount !== amount || first.currency !== request.currency) {
          throw new ChargeConflictError(
            `Order "${request.orderId}" was charged ${first.amount} ${first.currency}, not ${amount} ${request.currency}; use a new order id`,
          );
        }
        return first.result;
      }
      const reason = declineReasonOf(amount);
      const result: ChargeResult = reason === undefined
        ? { status: "APPROVED", authCode: authCodeOf(options.random) }
        : { status: "DECLINED", reason };
      if (orders.size >= LEDGER_ORDERS_MAX) orders.delete(orders.keys().next().value!);
      orders.set(request.orderId, { amount, currency: request.currency, result });
      if (result.status === "APPROVED") approved++;
      return result;
    },
    approved: () => approved,
  };
}

function authCodeOf(random: () => number): string {
  const digits = Math.floor(random() * 36 ** 6).toString(36).toUpperCase().padStart(6, "0");
  return `AUTH-${digits}`;
}

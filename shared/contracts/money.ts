/**
 * @module
 * Money as decimal strings ("129.50"), computed in integer minor units (bigint), never floats.
 */

const DECIMAL = /^(-)?(\d{1,12})(?:\.(\d{1,4}))?$/;
const SCALE = 4;

/** Parses a decimal string into units of 10^-4; throws RangeError on anything else. */
export function parseMoney(value: string): bigint {
  const match = DECIMAL.exec(value);
  if (!match) throw new RangeError(`"${value}" is not a decimal amount such as "129.50"`);
  const units = BigInt(match[2]) * 10n ** BigInt(SCALE) + BigInt((match[3] ?? "").padEnd(SCALE, "0"));
  return match[1] ? -units : units;
}

/** Formats units of 10^-4 with `fractionDigits` (default 2), rounding half away from zero. */
export function formatMoney(units: bigint, fractionDigits = 2): string {
  const negative = units < 0n;
  let abs = negative ? -units : units;
  const drop = 10n ** BigInt(SCALE - fractionDigits);
  abs = (abs + drop / 2n) / drop;
  const base = 10n ** BigInt(fractionDigits);
  const whole = abs / base;
  const fraction = fractionDigits > 0 ? `.${(abs % base).toString().padStart(fractionDigits, "0")}` : "";
  return `${negative && abs !== 0n ? "-" : ""}${whole}${fraction}`;
}

/**
 * The largest amount a `numeric(12, 2)` column holds (prices, order totals), in units of 10^-4. A computed
 * amount (a line or cart total) can pass it: compare against this before it is stored or promised.
 */
export const AMOUNT_MAX_UNITS = parseMoney("9999999999.99");

/** `price × qty` in units of 10^-4: exact however large, so totals are summed in units and formatted once. */
export function multiplyMoneyUnits(price: string, qty: number): bigint {
  if (!Number.isSafeInteger(qty)) throw new RangeError(`Quantity ${qty} is not a safe integer`);
  return parseMoney(price) * BigInt(qty);
}

/** `price × qty`, as a decimal string. */
export function multiplyMoney(price: string, qty: number): string {
  return formatMoney(multiplyMoneyUnits(price, qty));
}

/**
 * The sum of decimal strings. Each must parse (at most 12 integer digits), so a computed amount such as a
 * line total may not: sum {@linkcode multiplyMoneyUnits} instead of re-parsing what was formatted.
 */
export function sumMoney(amounts: readonly string[]): string {
  return formatMoney(amounts.reduce((total, a) => total + parseMoney(a), 0n));
}

/**
 * @module
 * Decimal text for the analytics answers: exact (no floats), trailing zeros trimmed down to two fraction
 * digits, so `numeric(18,4)` "129.5000" and 1_295_000n units both read "129.50".
 */
import { formatMoney } from "../../../shared/contracts/money.ts";

const NUMERIC = /^(-?\d+)(?:\.(\d+))?$/;

/** Normalises PostgreSQL numeric text: "129.5000" → "129.50", "0.1230" → "0.123". */
export function decimalText(value: string): string {
  const match = NUMERIC.exec(value);
  if (!match) throw new RangeError(`"${value}" is not decimal text such as "129.50"`);
  const whole = BigInt(match[1].replace("-", ""));
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  const negative = match[1].startsWith("-") && (whole !== 0n || fraction !== "");
  return `${negative ? "-" : ""}${whole}.${fraction.padEnd(2, "0")}`;
}

/** Formats units of 10^-4 (the scale of shared/contracts/money.ts) as {@linkcode decimalText}. */
export function decimalTextOfUnits(units: bigint): string {
  return decimalText(formatMoney(units, 4));
}

/** Units of 10^-4 of decimal text with at most four fraction digits (numeric(18,4), `decimalText`). */
export function unitsOfDecimal(text: string): bigint {
  const [whole, fraction = ""] = decimalText(text).split(".");
  if (fraction.length > 4) throw new RangeError(`"${text}" has more than 4 fraction digits`);
  const units = BigInt(whole.replace("-", "")) * 10_000n + BigInt(fraction.padEnd(4, "0"));
  return whole.startsWith("-") ? -units : units;
}

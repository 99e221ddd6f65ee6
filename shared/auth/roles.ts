/**
 * @module
 * The roles a principal can hold. Declared once here: the auth service grants them, every other service
 * checks them through `requireAuth`.
 */
import { z } from "zod";

/** Every role, in the order they are documented. */
export const ROLES = Object.freeze(["CUSTOMER", "ADMIN", "PARTNER", "DEVICE"] as const);

export type Role = (typeof ROLES)[number];

/** Validates one role name (exact, upper-case). */
export const RoleSchema = z.enum(ROLES);

/** True when `value` names a known role. */
export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

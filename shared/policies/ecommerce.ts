/**
 * @module
 * Who may do what to orders, carts and prices (seed 003 section 9), as data: an ordered table of rules
 * `{ action, who, status } → allow | deny(code)` read by one pure function, {@linkcode decide}. The first
 * matching rule wins; when none matches the answer is a deny (fail closed). Routes turn a deny into a
 * `ProblemError` with the rule's code, so "another user's order" is a 404, never a 403 that would confirm
 * the order exists.
 */
import type { ProblemCode } from "../contracts/problem.ts";
import type { Role } from "../auth/roles.ts";

/** Every action the e-commerce policies decide. */
export const ECOMMERCE_ACTIONS = Object.freeze(
  [
    "order.create",
    "order.read",
    "order.pay",
    "order.cancel",
    "order.fulfil",
    "cart.read",
    "cart.mutate",
    "product.price.change",
  ] as const,
);

export type EcommerceAction = (typeof ECOMMERCE_ACTIONS)[number];

/** Actions that change state: each needs a valid JWT, whatever else the table says. */
export const MUTATIONS: readonly EcommerceAction[] = Object.freeze(
  ECOMMERCE_ACTIONS.filter((a) => !a.endsWith(".read")),
);

/** The order lifecycle states (PENDING → RESERVED → PAID → FULFILLED, or CANCELED). */
export const ORDER_STATUSES = Object.freeze(["PENDING", "RESERVED", "PAID", "FULFILLED", "CANCELED"] as const);

export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** States an order never leaves. */
export const FINAL_ORDER_STATUSES: readonly OrderStatus[] = Object.freeze(["FULFILLED", "CANCELED"]);

/** The caller: a verified principal, or null for a request without a valid token. */
export type Subject = { readonly userId: string; readonly roles: readonly Role[] } | null;

/** What the action is about: its owner and (for orders) its current status. Omitted for creations. */
export interface Resource {
  readonly ownerId?: string;
  readonly status?: OrderStatus;
}

/**
 * How the subject relates to the resource. Rules name one of these:
 * - `anonymous`: no valid token;
 * - `admin`: holds ADMIN (checked before ownership, so an admin owner gets admin rights);
 * - `owner`: the resource is theirs;
 * - `stranger`: signed in, not an admin, and the resource is someone else's;
 * - `authenticated`: any signed-in subject.
 */
export type Who = "anonymous" | "admin" | "owner" | "stranger" | "authenticated";

export type Effect = { readonly allow: true } | { readonly allow: false; readonly code: ProblemCode };

/** One row of the policy table. `status` omitted matches any status (and resources without one). */
export interface PolicyRule {
  readonly action: EcommerceAction | readonly EcommerceAction[];
  readonly who: Who;
  readonly status?: readonly OrderStatus[];
  readonly effect: Effect;
}

export type Decision =
  | { readonly allow: true }
  | { readonly allow: false; readonly code: ProblemCode; readonly reason: string };

const allow: Effect = Object.freeze({ allow: true });
const deny = (code: ProblemCode): Effect => Object.freeze({ allow: false, code });

/** Order states from which an action may start; anything else is a lifecycle conflict. */
const CUSTOMER_CANCELABLE: readonly OrderStatus[] = ["PENDING", "RESERVED"];
const ADMIN_CANCELABLE: readonly OrderStatus[] = ["PENDING", "RESERVED", "PAID"];

/** The e-commerce policy table, read top to bottom; the first row that matches decides. */
export const ECOMMERCE_POLICY: readonly PolicyRule[] = Object.freeze(
  [
    // Every mutation needs a valid JWT; reads of private resources too.
    { action: ECOMMERCE_ACTIONS, who: "anonymous", effect: deny("AUTH.UNAUTHENTICATED") },

    { action: "order.create", who: "authenticated", effect: allow },

    // Someone else's order does not exist for a customer (404, not 403).
    { action: ["order.read", "order.pay", "order.cancel"], who: "stranger", effect: deny("ECOMMERCE.ORDER_NOT_FOUND") },
    { action: "order.read", who: "admin", effect: allow },
    { action: "order.read", who: "owner", effect: allow },

    { action: "order.cancel", who: "admin", status: ADMIN_CANCELABLE, effect: allow },
    { action: "order.cancel", who: "admin", effect: deny("ECOMMERCE.ORDER_NOT_CANCELABLE") },
    { action: "order.cancel", who: "owner", status: CUSTOMER_CANCELABLE, effect: allow },
    { action: "order.cancel", who: "owner", effect: deny("ECOMMERCE.ORDER_NOT_CANCELABLE") },

    // Paying is the owner's act alone: an admin paying for someone else is refused, not hidden.
    { action: "order.pay", who: "owner", status: ["RESERVED"], effect: allow },
    { action: "order.pay", who: "owner", effect: deny("ECOMMERCE.ORDER_INVALID_TRANSITION") },
    { action: "order.pay", who: "admin", effect: deny("AUTH.FORBIDDEN") },

    { action: "order.fulfil", who: "admin", status: ["PAID"], effect: allow },
    { action: "order.fulfil", who: "admin", effect: deny("ECOMMERCE.ORDER_INVALID_TRANSITION") },
    { action: "order.fulfil", who: "authenticated", effect: deny("AUTH.FORBIDDEN") },

    // Carts are private to their user, admins included.
    { action: ["cart.read", "cart.mutate"], who: "owner", effect: allow },
    { action: ["cart.read", "cart.mutate"], who: "authenticated", effect: deny("ECOMMERCE.CART_NOT_FOUND") },

    { action: "product.price.change", who: "admin", effect: allow },
    { action: "product.price.change", who: "authenticated", effect: deny("AUTH.FORBIDDEN") },
  ] satisfies PolicyRule[],
);

/** The relations that hold between `subject` and `resource` (several can hold at once). */
function relationsOf(subject: Subject, resource: Resource): ReadonlySet<Who> {
  if (subject === null) return new Set(["anonymous"]);
  const relations = new Set<Who>(["authenticated"]);
  const isAdmin = subject.roles.includes("ADMIN");
  const isOwner = resource.ownerId !== undefined && resource.ownerId === subject.userId;
  if (isAdmin) relations.add("admin");
  if (isOwner) relations.add("owner");
  if (!isAdmin && !isOwner) relations.add("stranger");
  return relations;
}

function matches(rule: PolicyRule, action: EcommerceAction, relations: ReadonlySet<Who>, resource: Resource): boolean {
  const actions: readonly EcommerceAction[] = typeof rule.action === "string" ? [rule.action] : rule.action;
  if (!actions.includes(action) || !relations.has(rule.who)) return false;
  if (rule.status === undefined) return true;
  return resource.status !== undefined && rule.status.includes(resource.status);
}

/**
 * Decides whether `subject` may perform `action` on `resource`, by the first matching rule of `table`
 * (default {@linkcode ECOMMERCE_POLICY}). Pure: no I/O, no clock.
 */
export function decide(
  action: EcommerceAction,
  subject: Subject,
  resource: Resource = {},
  table: readonly PolicyRule[] = ECOMMERCE_POLICY,
): Decision {
  const relations = relationsOf(subject, resource);
  const rule = table.find((r) => matches(r, action, relations, resource));
  if (rule === undefined) {
    return { allow: false, code: "AUTH.FORBIDDEN", reason: `No rule allows "${action}"` };
  }
  if (rule.effect.allow) return { allow: true };
  const status = resource.status ? ` on a ${resource.status} resource` : "";
  return { allow: false, code: rule.effect.code, reason: `"${action}" by ${rule.who}${status} is denied` };
}

/** @module Reusable schemas, parameters and responses of the e-commerce OpenAPI document. */
import type { ParameterObject, ResponseObject, SchemaObject } from "./_types.ts";

const money = (description: string): SchemaObject => ({
  type: "string",
  pattern: "^\\d{1,10}(\\.\\d{1,2})?$",
  description: `${description} — a decimal string, never a float`,
  examples: ["129.50"],
});
const currency: SchemaObject = { type: "string", pattern: "^[A-Z]{3}$", description: "ISO 4217", examples: ["EUR"] };
const uuid: SchemaObject = { type: "string", format: "uuid" };
const time: SchemaObject = { type: "string", format: "date-time" };
const ref = (name: string): SchemaObject => ({ $ref: `#/components/schemas/${name}` });

export const schemas: Readonly<Record<string, SchemaObject>> = {
  Problem: {
    type: "object",
    description: "RFC 9457 problem details; clients branch on `code`",
    required: ["type", "title", "status", "detail", "code"],
    properties: {
      type: { type: "string", examples: ["urn:bitvelocity:problem:ecommerce.product_not_found"] },
      title: { type: "string" },
      status: { type: "integer" },
      detail: { type: "string" },
      code: { type: "string", examples: ["ECOMMERCE.PRODUCT_NOT_FOUND"] },
      instance: { type: "string" },
      traceId: { type: "string" },
      errors: {
        type: "array",
        items: { type: "object", properties: { path: { type: "string" }, message: { type: "string" } } },
      },
    },
  },
  Product: {
    type: "object",
    required: ["id", "sku", "name", "description", "category", "price", "currency", "createdAt", "updatedAt"],
    properties: {
      id: uuid,
      sku: { type: "string", maxLength: 64 },
      name: { type: "string", maxLength: 200 },
      description: { type: "string", maxLength: 5000 },
      category: { type: "string", maxLength: 64 },
      price: money("Current unit price"),
      currency,
      createdAt: time,
      updatedAt: time,
    },
  },
  ProductCreate: {
    type: "object",
    additionalProperties: false,
    required: ["sku", "name", "category", "price", "currency"],
    properties: {
      sku: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description: "Unique; never changes" },
      name: { type: "string", minLength: 1, maxLength: 200 },
      description: { type: "string", maxLength: 5000, default: "" },
      category: { type: "string", minLength: 1, maxLength: 64 },
      price: money("Unit price, greater than zero"),
      currency,
    },
  },
  ProductReplace: {
    type: "object",
    additionalProperties: false,
    description: "Every mutable field; the sku cannot change",
    required: ["name", "description", "category", "price", "currency"],
    properties: {
      name: { type: "string", minLength: 1, maxLength: 200 },
      description: { type: "string", maxLength: 5000 },
      category: { type: "string", minLength: 1, maxLength: 64 },
      price: money("Unit price, greater than zero"),
      currency,
    },
  },
  ProductPatch: {
    type: "object",
    additionalProperties: false,
    minProperties: 1,
    description: "Any non-empty subset of the mutable fields",
    properties: {
      name: { type: "string", minLength: 1, maxLength: 200 },
      description: { type: "string", maxLength: 5000 },
      category: { type: "string", minLength: 1, maxLength: 64 },
      price: money("Unit price, greater than zero"),
      currency,
    },
  },
  ProductPage: {
    type: "object",
    required: ["items", "nextCursor"],
    properties: {
      items: { type: "array", items: ref("Product"), maxItems: 100 },
      nextCursor: { type: ["string", "null"], description: "Pass as `cursor` for the next page; null on the last" },
    },
  },
  PriceHistory: {
    type: "object",
    required: ["productId", "items"],
    properties: {
      productId: uuid,
      items: {
        type: "array",
        description: "SCD2 rows, newest first; `validTo` is null for the current price",
        items: {
          type: "object",
          required: ["price", "currency", "validFrom", "validTo", "changedBy"],
          properties: {
            price: money("Unit price"),
            currency,
            validFrom: time,
            validTo: { type: ["string", "null"], format: "date-time" },
            changedBy: { type: "string" },
          },
        },
      },
    },
  },
  Cart: {
    type: "object",
    required: ["id", "items", "total", "currency", "createdAt", "updatedAt"],
    properties: {
      id: uuid,
      items: {
        type: "array",
        maxItems: 100,
        items: {
          type: "object",
          required: ["productId", "sku", "name", "unitPrice", "currency", "qty", "lineTotal"],
          properties: {
            productId: uuid,
            sku: { type: "string" },
            name: { type: "string" },
            unitPrice: money("Current unit price"),
            currency,
            qty: { type: "integer", minimum: 1, maximum: 1000 },
            lineTotal: money("unitPrice × qty"),
          },
        },
      },
      total: money("Sum of the line totals"),
      currency: { type: ["string", "null"], description: "The cart's one currency; null while empty" },
      createdAt: time,
      updatedAt: time,
    },
  },
  CartItemAdd: {
    type: "object",
    additionalProperties: false,
    required: ["productId", "qty"],
    properties: { productId: uuid, qty: { type: "integer", minimum: 1, maximum: 1000 } },
  },
  CartItemSet: {
    type: "object",
    additionalProperties: false,
    required: ["qty"],
    properties: { qty: { type: "integer", minimum: 0, maximum: 1000, description: "0 removes the line" } },
  },
  Stock: {
    type: "object",
    required: ["productId", "sku", "onHand", "reserved", "available"],
    properties: {
      productId: uuid,
      sku: { type: "string" },
      onHand: { type: "integer", minimum: 0 },
      reserved: { type: "integer", minimum: 0 },
      available: { type: "integer", minimum: 0 },
    },
  },
  StockAdjustment: {
    type: "object",
    additionalProperties: false,
    required: ["delta", "reason"],
    properties: {
      delta: { type: "integer", minimum: -1_000_000, maximum: 1_000_000, description: "Non-zero" },
      reason: { type: "string", minLength: 1, maxLength: 200 },
    },
  },
  OrderCreate: {
    oneOf: [
      {
        type: "object",
        additionalProperties: false,
        required: ["items"],
        properties: {
          items: {
            type: "array",
            minItems: 1,
            maxItems: 50,
            description: "Each productId at most once",
            items: {
              type: "object",
              additionalProperties: false,
              required: ["productId", "qty"],
              properties: { productId: uuid, qty: { type: "integer", minimum: 1, maximum: 1000 } },
            },
          },
        },
      },
      {
        type: "object",
        additionalProperties: false,
        required: ["cartId"],
        properties: { cartId: uuid },
      },
    ],
  },
  OrderCancel: {
    type: "object",
    additionalProperties: false,
    properties: { reason: { type: "string", minLength: 1, maxLength: 200 } },
  },
  Order: {
    type: "object",
    required: ["id", "userId", "status", "items", "totalAmount", "currency", "createdAt", "updatedAt", "version"],
    properties: {
      id: uuid,
      userId: { type: "string" },
      status: { type: "string", enum: ["PENDING", "RESERVED", "PAID", "FULFILLED", "CANCELED"] },
      items: {
        type: "array",
        items: {
          type: "object",
          required: ["productId", "qty", "price"],
          properties: {
            productId: uuid,
            qty: { type: "integer", minimum: 1, maximum: 1000 },
            price: money(
              "Unit price when ordered: the running flash sale's price if the product was on sale, else the list price",
            ),
          },
        },
      },
      totalAmount: money("Order total"),
      currency,
      createdAt: time,
      updatedAt: time,
      version: { type: "integer" },
    },
  },
  OrderPage: {
    type: "object",
    required: ["items", "nextCursor"],
    properties: {
      items: { type: "array", items: ref("Order"), maxItems: 100 },
      nextCursor: { type: ["string", "null"] },
    },
  },
};

/** A JSON response with schema `name`. */
export function jsonResponse(description: string, name: string): ResponseObject {
  return { description, content: { "application/json": { schema: ref(name) } } };
}

/** A problem+json response naming the codes a client may see. */
export function problem(description: string, codes: readonly string[]): ResponseObject {
  return {
    description: `${description} (${codes.join(", ")})`,
    content: { "application/problem+json": { schema: ref("Problem") } },
  };
}

/** A JSON request body with schema `name`. */
export function jsonBody(name: string, required = true) {
  return { required, content: { "application/json": { schema: ref(name) } } };
}

export const pathUuid = (name: string, description: string): ParameterObject => ({
  name,
  in: "path",
  required: true,
  description: `${description}; anything that is not a UUID answers 404`,
  schema: uuid,
});

export const bearer = [{ bearerAuth: [] }] as const;

/** Responses every authenticated route can give. */
export const authProblems = {
  "401": problem("Missing, invalid or expired access token", [
    "AUTH.UNAUTHENTICATED",
    "AUTH.TOKEN_INVALID",
    "AUTH.TOKEN_EXPIRED",
  ]),
} as const;

export const adminProblems = {
  ...authProblems,
  "403": problem("The token lacks the ADMIN role", ["AUTH.FORBIDDEN"]),
} as const;

export const badRequest = problem("The body or query failed validation", [
  "COMMON.VALIDATION_FAILED",
  "COMMON.MALFORMED_JSON",
]);

export const bodyProblems = {
  "400": badRequest,
  "413": problem("The body exceeds 1 MiB", ["COMMON.PAYLOAD_TOO_LARGE"]),
  "415": problem("The body is not JSON", ["COMMON.UNSUPPORTED_MEDIA_TYPE"]),
} as const;

export const idempotencyKey: ParameterObject = {
  name: "Idempotency-Key",
  in: "header",
  required: true,
  description:
    "1..255 printable characters, unique per user and request; a repeat with the same body replays the first " +
    "response (with `Idempotent-Replayed: true`) for 24 h",
  schema: { type: "string", minLength: 1, maxLength: 255 },
};
/** The same header, optional: admin stock adjustments honour it when sent and run as before without it. */
export const optionalIdempotencyKey: ParameterObject = {
  ...idempotencyKey,
  required: false,
  description: "Optional; send one (a random UUID) whenever the request may be retried, for example after a timeout. " +
    "With it, a repeat with the same body replays the first response (with `Idempotent-Replayed: true`) for 24 h " +
    "instead of applying the delta again; without it every request is applied",
};
export const correlationId: ParameterObject = {
  name: "Correlation-Id",
  in: "header",
  required: false,
  description: "Echoed back and carried into the events the request causes",
  schema: { type: "string", maxLength: 128 },
};
/** The response header of a replayed answer. */
export const replayedHeaders: ResponseObject["headers"] = {
  "idempotent-replayed": {
    description: "`true` when this is the stored response to an earlier request with the same key",
    schema: { type: "string", enum: ["true"] },
  },
};

export { ref };

/**
 * @module
 * The OpenAPI 3.1 document of the e-commerce REST API of seed 003 (catalog, cart, inventory, orders),
 * written as a typed object rather than generated: the routes are plain Hono with zod bodies, and the
 * inventory and order routes belong to other contexts. `openapi_test.ts` keeps it honest by comparing its
 * paths and methods with the routes the apps really register.
 */
import {
  adminProblems,
  authProblems,
  bearer,
  bodyProblems,
  correlationId,
  idempotencyKey,
  jsonBody,
  jsonResponse,
  optionalIdempotencyKey,
  pathUuid,
  problem,
  replayedHeaders,
  schemas,
} from "./_components.ts";
import type { OpenApiDocument, OperationObject, ParameterObject, ResponseObject } from "./_types.ts";

const productId = pathUuid("id", "The product id");
const cartId = pathUuid("id", "The cart id");
const orderId = pathUuid("id", "The order id");
const itemProductId = pathUuid("productId", "The product id");
const productNotFound = problem("No such product", ["ECOMMERCE.PRODUCT_NOT_FOUND"]);
const cartNotFound = problem("No such cart, or it belongs to another user", ["ECOMMERCE.CART_NOT_FOUND"]);
const orderNotFound = problem("No such order, or it belongs to another user", ["ECOMMERCE.ORDER_NOT_FOUND"]);

/** The product's strong ETag: its row version, `"v7"`; the same from the cache as from the database. */
const productEtag: ResponseObject["headers"] = {
  etag: {
    description: 'The product\'s version as a strong entity tag, `"v7"`; send it back in `If-Match` to change it',
    schema: { type: "string", pattern: '^"v[1-9][0-9]*"$' },
  },
};
const productResponse = (description: string): ResponseObject => ({
  ...jsonResponse(description, "Product"),
  headers: productEtag,
});
const ifMatch: ParameterObject = {
  name: "If-Match",
  in: "header",
  required: false,
  description: 'Optional: the ETag you read (`"v7"`), a list of at most 16, or `*` (any existing product). The ' +
    "change applies only if the product is still at one of those versions, checked by the statement that writes " +
    'it; otherwise 412. Compared strongly: `W/"v7"` never matches. A value that is not `*` or a list of quoted ' +
    "entity tags answers 400. Without the header the change overwrites whatever version is current, as before " +
    "products had ETags.",
  schema: { type: "string" },
};
const ifNoneMatch: ParameterObject = {
  name: "If-None-Match",
  in: "header",
  required: false,
  description: "Optional: ETags you hold (or `*`); 304 without a body when one names the current version (weak " +
    "comparison). A malformed value is ignored.",
  schema: { type: "string" },
};
const productChanged = problem(
  "`If-Match` names none of the product's current version: it changed since you read it; read it again",
  ["ECOMMERCE.PRODUCT_VERSION_MISMATCH"],
);

const query = (name: string, description: string, schema: ParameterObject["schema"]): ParameterObject => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});

const idempotencyProblems = {
  "409": problem("The first request with this key is still in flight, or the transition is not allowed", [
    "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT",
    "ECOMMERCE.ORDER_INVALID_TRANSITION",
  ]),
  "422": problem("The key was used with a different request", ["ECOMMERCE.IDEMPOTENCY_KEY_REUSED"]),
} as const;

const orderTransition = (
  operationId: string,
  summary: string,
  extra: { readonly requestBody?: OperationObject["requestBody"]; readonly responses: OperationObject["responses"] },
): OperationObject => ({
  operationId,
  summary,
  tags: ["orders"],
  security: bearer,
  parameters: [orderId, idempotencyKey, correlationId],
  ...(extra.requestBody ? { requestBody: extra.requestBody } : {}),
  responses: {
    "200": jsonResponse("The order after the transition", "Order"),
    "400": problem("Missing Idempotency-Key or bad body", [
      "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED",
      "COMMON.VALIDATION_FAILED",
    ]),
    ...authProblems,
    "404": orderNotFound,
    ...idempotencyProblems,
    ...extra.responses,
  },
});

export const ecommerceOpenApiDocument: OpenApiDocument = {
  openapi: "3.1.0",
  info: {
    title: "BitVelocity e-commerce API",
    version: "1.0.0",
    description: "Catalog, cart, inventory and orders of one region (seed 003). Errors are RFC 9457 " +
      "`application/problem+json` with a stable `code`; money is a decimal string with an ISO 4217 currency.",
  },
  servers: [{ url: "/", description: "This region" }],
  tags: [
    { name: "catalog", description: "Products and their price history" },
    { name: "cart", description: "Per-user carts, priced from the catalog" },
    { name: "inventory", description: "Stock levels and adjustments" },
    { name: "orders", description: "Order lifecycle with Idempotency-Key" },
  ],
  paths: {
    "/api/v1/products": {
      get: {
        operationId: "listProducts",
        summary: "List products in sku order, filtered, with keyset pagination",
        tags: ["catalog"],
        parameters: [
          query("q", "Text in the name or description (case-insensitive; % and _ are literal)", {
            type: "string",
            maxLength: 100,
          }),
          query("category", "Exact category", { type: "string", maxLength: 64 }),
          query("minPrice", "Lowest price, inclusive", { type: "string", pattern: "^\\d{1,10}(\\.\\d{1,2})?$" }),
          query("maxPrice", "Highest price, inclusive", { type: "string", pattern: "^\\d{1,10}(\\.\\d{1,2})?$" }),
          query("limit", "Page size", { type: "integer", minimum: 1, maximum: 100, default: 20 }),
          query("cursor", "The `nextCursor` of the previous page", { type: "string", maxLength: 512 }),
        ],
        responses: { "200": jsonResponse("A page of products", "ProductPage"), "400": bodyProblems["400"] },
      },
      post: {
        operationId: "createProduct",
        summary: "Create a product (ADMIN)",
        tags: ["catalog"],
        security: bearer,
        requestBody: jsonBody("ProductCreate"),
        responses: {
          "201": {
            ...jsonResponse("The product", "Product"),
            headers: { location: { description: "The product's URL", schema: { type: "string" } }, ...productEtag },
          },
          ...bodyProblems,
          ...adminProblems,
          "409": problem("The sku is taken", ["ECOMMERCE.SKU_TAKEN"]),
        },
      },
    },
    "/api/v1/products/{id}": {
      get: {
        operationId: "getProduct",
        summary: "Read a product (served from a cache invalidated by product.updated events)",
        tags: ["catalog"],
        parameters: [productId, ifNoneMatch],
        responses: {
          "200": productResponse("The product"),
          "304": { description: "`If-None-Match` names the current version: no body", headers: productEtag },
          "404": productNotFound,
        },
      },
      put: {
        operationId: "replaceProduct",
        summary: "Replace every mutable field (ADMIN); a price change starts a new price-history row",
        tags: ["catalog"],
        security: bearer,
        parameters: [productId, ifMatch],
        requestBody: jsonBody("ProductReplace"),
        responses: {
          "200": productResponse("The product, with the ETag of its new version"),
          ...bodyProblems,
          ...adminProblems,
          "404": productNotFound,
          "412": productChanged,
        },
      },
      patch: {
        operationId: "patchProduct",
        summary: "Change some fields (ADMIN); a price change starts a new price-history row",
        tags: ["catalog"],
        security: bearer,
        parameters: [productId, ifMatch],
        requestBody: jsonBody("ProductPatch"),
        responses: {
          "200": productResponse("The product, with the ETag of its new version"),
          ...bodyProblems,
          ...adminProblems,
          "404": productNotFound,
          "412": productChanged,
        },
      },
    },
    "/api/v1/products/{id}/price-history": {
      get: {
        operationId: "getPriceHistory",
        summary: "The product's prices over time (SCD2), newest first",
        tags: ["catalog"],
        parameters: [productId, query("limit", "Rows", { type: "integer", minimum: 1, maximum: 500, default: 100 })],
        responses: {
          "200": jsonResponse("The price rows", "PriceHistory"),
          "400": bodyProblems["400"],
          "404": productNotFound,
        },
      },
    },
    "/api/v1/carts": {
      post: {
        operationId: "createCart",
        summary: "Create an empty cart for the caller",
        tags: ["cart"],
        security: bearer,
        responses: {
          "201": jsonResponse("The empty cart", "Cart"),
          ...bodyProblems,
          ...authProblems,
          "409": problem("1000 carts, none empty and unchanged for 24 h (a new cart replaces one)", [
            "COMMON.CONFLICT",
          ]),
        },
      },
    },
    "/api/v1/carts/{id}": {
      get: {
        operationId: "getCart",
        summary: "The caller's cart with current prices and its total",
        tags: ["cart"],
        security: bearer,
        parameters: [cartId],
        responses: {
          "200": jsonResponse("The cart", "Cart"),
          ...authProblems,
          "404": cartNotFound,
          "422": problem("The cart's products are priced in more than one currency", ["ECOMMERCE.CURRENCY_MISMATCH"]),
        },
      },
      delete: {
        operationId: "deleteCart",
        summary: "Delete the caller's cart and its lines",
        tags: ["cart"],
        security: bearer,
        parameters: [cartId],
        responses: { "204": { description: "Deleted" }, ...authProblems, "404": cartNotFound },
      },
    },
    "/api/v1/carts/{id}/items": {
      post: {
        operationId: "addCartItem",
        summary: "Add units of a product (added to any already in the cart)",
        tags: ["cart"],
        security: bearer,
        parameters: [cartId],
        requestBody: jsonBody("CartItemAdd"),
        responses: {
          "200": jsonResponse("The cart", "Cart"),
          ...bodyProblems,
          ...authProblems,
          "404": problem("No such cart or product", ["ECOMMERCE.CART_NOT_FOUND", "ECOMMERCE.PRODUCT_NOT_FOUND"]),
          "409": problem("More than 1000 units or 100 products", ["COMMON.CONFLICT"]),
          "422": problem("The product's currency differs from the cart's", ["ECOMMERCE.CURRENCY_MISMATCH"]),
        },
      },
    },
    "/api/v1/carts/{id}/items/{productId}": {
      put: {
        operationId: "setCartItem",
        summary: "Set the quantity of a product; 0 removes it",
        tags: ["cart"],
        security: bearer,
        parameters: [cartId, itemProductId],
        requestBody: jsonBody("CartItemSet"),
        responses: {
          "204": { description: "Set" },
          ...bodyProblems,
          ...authProblems,
          "404": problem("No such cart or product", ["ECOMMERCE.CART_NOT_FOUND", "ECOMMERCE.PRODUCT_NOT_FOUND"]),
          "409": problem("More than 100 products", ["COMMON.CONFLICT"]),
          "422": problem("The product's currency differs from the cart's", ["ECOMMERCE.CURRENCY_MISMATCH"]),
        },
      },
      delete: {
        operationId: "removeCartItem",
        summary: "Remove a product from the cart (removing an absent one is not an error)",
        tags: ["cart"],
        security: bearer,
        parameters: [cartId, itemProductId],
        responses: { "204": { description: "Removed" }, ...authProblems, "404": cartNotFound },
      },
    },
    "/api/v1/inventory/{productId}": {
      get: {
        operationId: "getStock",
        summary: "A product's stock",
        tags: ["inventory"],
        parameters: [itemProductId],
        responses: { "200": jsonResponse("The stock", "Stock"), "404": productNotFound },
      },
    },
    "/api/v1/inventory/{productId}/adjustments": {
      post: {
        operationId: "adjustStock",
        summary: "Add or remove units on hand (ADMIN); send an Idempotency-Key to make a retry safe",
        tags: ["inventory"],
        security: bearer,
        parameters: [itemProductId, optionalIdempotencyKey],
        requestBody: jsonBody("StockAdjustment"),
        responses: {
          "200": {
            ...jsonResponse("The stock after the adjustment (or the first response, replayed)", "Stock"),
            headers: replayedHeaders,
          },
          ...bodyProblems,
          "400": problem("Bad body, or an Idempotency-Key that is blank or not 1..255 printable characters", [
            "COMMON.VALIDATION_FAILED",
            "COMMON.MALFORMED_JSON",
            "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED",
          ]),
          ...adminProblems,
          "404": productNotFound,
          "409": problem("On hand would drop below zero or below what is reserved, or the key is in flight", [
            "ECOMMERCE.STOCK_NEGATIVE",
            "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT",
          ]),
          "422": problem("The key was used with a different request", ["ECOMMERCE.IDEMPOTENCY_KEY_REUSED"]),
        },
      },
    },
    "/api/v1/orders": {
      post: {
        operationId: "placeOrder",
        summary: "Place an order from items or a cart; stock is reserved before it answers",
        tags: ["orders"],
        security: bearer,
        parameters: [idempotencyKey, correlationId],
        requestBody: jsonBody("OrderCreate"),
        responses: {
          "201": jsonResponse("The order (RESERVED)", "Order"),
          ...bodyProblems,
          "400": problem("Missing Idempotency-Key or bad body", [
            "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED",
            "COMMON.VALIDATION_FAILED",
            "COMMON.MALFORMED_JSON",
          ]),
          ...authProblems,
          "404": problem("A product or the cart does not exist", [
            "ECOMMERCE.PRODUCT_NOT_FOUND",
            "ECOMMERCE.CART_NOT_FOUND",
          ]),
          "409": problem("Not enough stock (the order is CANCELED), or the key is in flight", [
            "ECOMMERCE.INSUFFICIENT_STOCK",
            "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT",
          ]),
          "422": problem("Mixed currencies, or the key was used with a different request", [
            "ECOMMERCE.CURRENCY_MISMATCH",
            "ECOMMERCE.IDEMPOTENCY_KEY_REUSED",
          ]),
          "503": problem("Inventory is unavailable", ["COMMON.UPSTREAM_UNAVAILABLE"]),
        },
      },
      get: {
        operationId: "listMyOrders",
        summary: "The caller's orders, newest first",
        tags: ["orders"],
        security: bearer,
        parameters: [
          query("mine", "Only the caller's orders (the only listing today)", { type: "string" }),
          query("limit", "Page size", { type: "integer", minimum: 1, maximum: 100, default: 20 }),
          query("cursor", "The `nextCursor` of the previous page", { type: "string", maxLength: 200 }),
        ],
        responses: {
          "200": jsonResponse("A page of orders", "OrderPage"),
          "400": bodyProblems["400"],
          ...authProblems,
        },
      },
    },
    "/api/v1/orders/{id}": {
      get: {
        operationId: "getOrder",
        summary: "An order (its owner or ADMIN)",
        tags: ["orders"],
        security: bearer,
        parameters: [orderId],
        responses: { "200": jsonResponse("The order", "Order"), ...authProblems, "404": orderNotFound },
      },
    },
    "/api/v1/orders/{id}/pay": {
      post: orderTransition("payOrder", "Pay a RESERVED order (its owner)", {
        responses: {
          "402": problem("The payment was declined; the order is CANCELED", ["ECOMMERCE.PAYMENT_DECLINED"]),
          "409": problem(
            "The key is in flight, the order is not RESERVED, or its stock hold lapses (the order is CANCELED)",
            [
              "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT",
              "ECOMMERCE.ORDER_INVALID_TRANSITION",
              "ECOMMERCE.RESERVATION_EXPIRED",
            ],
          ),
          "503": problem("The payment gateway is unavailable; the order stays RESERVED", [
            "ECOMMERCE.PAYMENT_UNAVAILABLE",
          ]),
        },
      }),
    },
    "/api/v1/orders/{id}/cancel": {
      post: orderTransition("cancelOrder", "Cancel an order (owner: PENDING or RESERVED; ADMIN: any not final)", {
        requestBody: jsonBody("OrderCancel", false),
        responses: {
          "409": problem("The order can no longer be canceled, or the key is in flight", [
            "ECOMMERCE.ORDER_NOT_CANCELABLE",
            "ECOMMERCE.ORDER_INVALID_TRANSITION",
            "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT",
          ]),
        },
      }),
    },
    "/api/v1/orders/{id}/fulfill": {
      post: orderTransition("fulfillOrder", "Fulfil a PAID order (ADMIN)", {
        responses: { "403": problem("The token lacks the ADMIN role", ["AUTH.FORBIDDEN"]) },
      }),
    },
  },
  components: {
    schemas,
    securitySchemes: {
      bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT (EdDSA, typ at+jwt)" },
    },
  },
};

/**
 * @module
 * The cart context of e-commerce (seed 003): per-user carts priced from the catalog over REST, and the
 * reads orders use at checkout.
 */
export { cartMigrations } from "./migrations.ts";
export { type CartRoutesDeps, createCartRoutes } from "./routes.ts";
export { type CartLine, type CartView, clearCart, getCartItemsForCheckout } from "./cart_store.ts";
export { CART_LIMITS } from "./schemas.ts";

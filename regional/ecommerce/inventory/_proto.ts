/**
 * @module
 * The `Inventory` service of `proto/ecommerce/inventory/v1/inventory.proto`, loaded once per process and
 * shared by the server binding and the client.
 */
import { loadProto, serviceClientOf } from "../../../shared/adapters/grpc/mod.ts";

/** The fully qualified name of the service. */
export const INVENTORY_SERVICE_NAME = "bitvelocity.ecommerce.inventory.v1.Inventory";

type ServiceClientConstructor = ReturnType<typeof serviceClientOf>;
let constructor: ServiceClientConstructor | undefined;

/** The client constructor; its `.service` is the server definition. */
export function inventoryClientConstructor(): ServiceClientConstructor {
  constructor ??= serviceClientOf(loadProto("ecommerce/inventory/v1/inventory.proto"), INVENTORY_SERVICE_NAME);
  return constructor;
}

/** Wire shapes (proto-loader with `keepCase: false`, `defaults: true`: camelCase, absent scalars as defaults). */
export interface ReserveRequestMessage {
  readonly reservationId: string;
  readonly items: readonly { readonly productId: string; readonly qty: number }[];
  readonly ttlSeconds: number;
}

export interface ReserveResponseMessage {
  readonly ok: boolean;
  readonly failedProductId: string;
  readonly requested: number;
  readonly available: number;
}

export interface StockItemMessage {
  readonly productId: string;
  readonly sku: string;
  readonly onHand: number;
  readonly reserved: number;
  readonly available: number;
}

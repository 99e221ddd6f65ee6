/**
 * @module
 * The GraphQL schema of the aggregated product read model (seed 003 section 4), code-first so resolvers
 * sit beside their fields. Names are the API's own: nothing here (types, fields, descriptions) names a
 * table. {@linkcode graphqlSchemaSdl} is the printed schema for docs.
 */
import {
  GraphQLBoolean,
  GraphQLError,
  GraphQLID,
  GraphQLInputObjectType,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  type GraphQLNullableType,
  GraphQLObjectType,
  GraphQLScalarType,
  GraphQLSchema,
  GraphQLString,
  Kind,
  printSchema,
} from "graphql";
import { productResolvers, queryResolvers } from "./resolvers.ts";

/** The catalog's price format: numeric(12,2), never negative. */
const MONEY = /^\d{1,10}(\.\d{1,2})?$/;

function moneyOf(value: unknown): string {
  if (typeof value !== "string" || !MONEY.test(value)) {
    const shown = JSON.stringify(value)?.slice(0, 40) ?? String(value);
    throw new GraphQLError(`Money must be a decimal string such as "129.50", got ${shown}`);
  }
  return value;
}

const Money = new GraphQLScalarType({
  name: "Money",
  description: 'A decimal amount as a string, e.g. "129.50" (never a float, so no rounding).',
  serialize: (value) => String(value),
  parseValue: moneyOf,
  parseLiteral: (ast) => moneyOf(ast.kind === Kind.STRING ? ast.value : `(${ast.kind})`),
});

const nonNull = <T extends GraphQLNullableType>(type: T) => new GraphQLNonNull(type);

const InventoryInfo = new GraphQLObjectType({
  name: "InventoryInfo",
  description: "Stock of one product. A product never counted yet has zero of everything.",
  fields: {
    productId: { type: nonNull(GraphQLID) },
    sku: { type: nonNull(GraphQLString) },
    onHand: { type: nonNull(GraphQLInt), description: "Units in the warehouse." },
    reserved: { type: nonNull(GraphQLInt), description: "Units held for orders not yet fulfilled." },
    available: { type: nonNull(GraphQLInt), description: "onHand - reserved: what can still be ordered." },
  },
});

const Product = new GraphQLObjectType({
  name: "Product",
  fields: {
    id: { type: nonNull(GraphQLID) },
    sku: { type: nonNull(GraphQLString) },
    name: { type: nonNull(GraphQLString) },
    description: { type: nonNull(GraphQLString) },
    category: { type: nonNull(GraphQLString) },
    price: { type: nonNull(Money) },
    currency: { type: nonNull(GraphQLString), description: "ISO 4217 code, e.g. USD." },
    inventory: { type: InventoryInfo, resolve: productResolvers.inventory },
  },
});

const PageInfo = new GraphQLObjectType({
  name: "PageInfo",
  fields: {
    hasNextPage: { type: nonNull(GraphQLBoolean) },
    endCursor: {
      type: GraphQLString,
      description: "Pass as `after` for the next page; null on the last page.",
    },
  },
});

const ProductConnection = new GraphQLObjectType({
  name: "ProductConnection",
  description: "One page of products, in sku order.",
  fields: {
    nodes: { type: nonNull(new GraphQLList(nonNull(Product))) },
    pageInfo: { type: nonNull(PageInfo) },
  },
});

const ProductFilter = new GraphQLInputObjectType({
  name: "ProductFilter",
  fields: {
    q: { type: GraphQLString, description: "Text in the name or description (at most 100 characters)." },
    category: { type: GraphQLString },
    minPrice: { type: Money },
    maxPrice: { type: Money },
  },
});

const Query = new GraphQLObjectType({
  name: "Query",
  fields: {
    product: {
      type: Product,
      description: "One product with its stock; null when no product has this id. Cached for up to 30 s.",
      args: { id: { type: nonNull(GraphQLID) } },
      resolve: queryResolvers.product,
    },
    products: {
      type: ProductConnection,
      description: "Products matching the filter, `first` (1 to 100) at a time.",
      args: {
        filter: { type: ProductFilter },
        first: { type: GraphQLInt, defaultValue: 20 },
        after: { type: GraphQLString },
      },
      resolve: queryResolvers.products,
    },
    productInventory: {
      type: InventoryInfo,
      description: "The stock of one product; null when no product has this id.",
      args: { id: { type: nonNull(GraphQLID) } },
      resolve: queryResolvers.productInventory,
    },
  },
});

export const graphqlSchema: GraphQLSchema = new GraphQLSchema({ query: Query });

/** The schema in SDL, for docs and clients. */
export const graphqlSchemaSdl: string = printSchema(graphqlSchema);

/**
 * @module
 * The cost of one operation, counted after its variables were coerced. The weights are graphql-armor's
 * cost-limit ones (an object 2, a scalar 1, ×1.5 per level, a fragment counted as a level, a field × its page
 * size), so the limit keeps its meaning; what differs is where the page size comes from. armor multiplies by a
 * literal `first` only: `products(first: $n)` with `{"n": 100}`, or `products` with the schema's default 20,
 * counted as one item, so eleven full pages passed as a tenth of one. Here the size is the argument's coerced
 * value (literal, variable or default). Nothing is skipped: introspection fields count like any other, and so do
 * fields under `@skip`/`@include` (as in armor: the bound holds whatever the directives say).
 */
import {
  type FieldNode,
  type FragmentDefinitionNode,
  getArgumentValues,
  getNamedType,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  isInterfaceType,
  isObjectType,
  Kind,
  type OperationDefinitionNode,
  SchemaMetaFieldDef,
  type SelectionNode,
  type SelectionSetNode,
  TypeMetaFieldDef,
  TypeNameMetaFieldDef,
} from "graphql";

/** graphql-armor cost-limit's weights, kept so that `COST_MAX` means what it meant with armor's rule. */
const COST_WEIGHTS = Object.freeze({
  OBJECT: 2,
  SCALAR: 1,
  /** Each level multiplies the cost of what is below it. */
  DEPTH_FACTOR: 1.5,
});

/** Arguments that say how many items a list field answers. */
const PAGE_SIZE_ARGS: readonly string[] = Object.freeze(["first", "last"]);

interface CostWalk {
  readonly schema: GraphQLSchema;
  readonly variables: Readonly<Record<string, unknown>>;
  readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>;
  /** A fragment's cost does not depend on where it is spread (variables are the operation's): each is counted once. */
  readonly fragmentCosts: Map<string, number>;
}

/**
 * The cost of `operation` with its coerced `variables` (from `getVariableValues`). Expects a document that passed
 * validation (known fields and fragments, no fragment cycles); time is linear in the document's size.
 */
export function operationCost(
  schema: GraphQLSchema,
  fragments: readonly FragmentDefinitionNode[],
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>>,
): number {
  const root = schema.getRootType(operation.operation);
  if (!root) return 0;
  const walk: CostWalk = {
    schema,
    variables,
    fragments: new Map(fragments.map((f) => [f.name.value, f])),
    fragmentCosts: new Map(),
  };
  // As in armor, the operation's own fields are not multiplied by a level.
  let cost = 0;
  for (const selection of operation.selectionSet.selections) cost += selectionCost(walk, selection, root);
  return cost;
}

function selectionSetCost(walk: CostWalk, selectionSet: SelectionSetNode, parent: GraphQLNamedType): number {
  let cost = COST_WEIGHTS.OBJECT;
  for (const selection of selectionSet.selections) {
    cost += COST_WEIGHTS.DEPTH_FACTOR * selectionCost(walk, selection, parent);
  }
  return cost;
}

function selectionCost(walk: CostWalk, selection: SelectionNode, parent: GraphQLNamedType): number {
  switch (selection.kind) {
    case Kind.FIELD: {
      if (!selection.selectionSet) return COST_WEIGHTS.SCALAR;
      const field = fieldOf(walk.schema, parent, selection.name.value);
      if (!field) return COST_WEIGHTS.SCALAR;
      const cost = selectionSetCost(walk, selection.selectionSet, getNamedType(field.type));
      return cost * pageSizeOf(field, selection, walk.variables);
    }
    case Kind.INLINE_FRAGMENT: {
      const type = selection.typeCondition ? walk.schema.getType(selection.typeCondition.name.value) : parent;
      return selectionSetCost(walk, selection.selectionSet, type ?? parent);
    }
    case Kind.FRAGMENT_SPREAD: {
      const name = selection.name.value;
      let cost = walk.fragmentCosts.get(name);
      if (cost === undefined) {
        const fragment = walk.fragments.get(name);
        const type = fragment && walk.schema.getType(fragment.typeCondition.name.value);
        cost = fragment && type ? selectionSetCost(walk, fragment.selectionSet, type) : 0;
        walk.fragmentCosts.set(name, cost);
      }
      return COST_WEIGHTS.SCALAR + COST_WEIGHTS.DEPTH_FACTOR * cost;
    }
  }
}

/** The field `name` of `parent`, meta fields included (`__typename` anywhere, `__schema`/`__type` on Query). */
function fieldOf(
  schema: GraphQLSchema,
  parent: GraphQLNamedType,
  name: string,
): GraphQLField<unknown, unknown> | undefined {
  if (name === TypeNameMetaFieldDef.name) return TypeNameMetaFieldDef;
  if (parent === schema.getQueryType()) {
    if (name === SchemaMetaFieldDef.name) return SchemaMetaFieldDef;
    if (name === TypeMetaFieldDef.name) return TypeMetaFieldDef;
  }
  const composite = parent as GraphQLCompositeType;
  return isObjectType(composite) || isInterfaceType(composite) ? composite.getFields()[name] : undefined;
}

/**
 * How many items `field` answers: the largest coerced `first`/`last` (a literal, a variable, or when absent or null
 * the argument's default, as the resolver reads it), at least 1. May throw the GraphQLError of an argument that does
 * not coerce.
 */
function pageSizeOf(
  field: GraphQLField<unknown, unknown>,
  node: FieldNode,
  variables: Readonly<Record<string, unknown>>,
): number {
  const sizeArgs = field.args.filter((arg) => PAGE_SIZE_ARGS.includes(arg.name));
  if (sizeArgs.length === 0) return 1;
  const values = getArgumentValues(field, node, variables);
  let size = 1;
  for (const arg of sizeArgs) {
    const value = values[arg.name] ?? arg.defaultValue;
    if (typeof value === "number" && value > size) size = value;
  }
  return size;
}

import assert from "node:assert/strict";
import fc from "fast-check";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { getIntrospectionQuery } from "graphql";
import {
  graphqlApp,
  type GraphqlReply,
  LEAKS,
  migrateForGraphql,
  post,
  postWithDeadline,
  replyOf,
} from "./_fixture_for_test.ts";
import { GRAPHQL_LIMITS, graphqlSchemaSdl } from "./mod.ts";

let shared: Promise<Sql> | undefined;
function database(): Promise<Sql> {
  shared ??= createPgliteSql().then(async (sql) => {
    await migrateForGraphql(sql);
    return sql;
  });
  return shared;
}
const opts = { sanitizeResources: false, sanitizeOps: false };
/** Where the README says the SDL is published. */
const SCHEMA_PATH = "/graphql/schema.graphql";

async function app() {
  return graphqlApp(await database(), createMemoryCache());
}

const FULL_PAGE = `nodes { id sku name description category price currency
  inventory { productId sku onHand reserved available } } pageInfo { hasNextPage endCursor }`;

function assertRejected(reply: GraphqlReply, code: string, message: RegExp): void {
  assert.equal(reply.status, 400, reply.text);
  assert.ok(Array.isArray(reply.body.errors) && reply.body.errors.length > 0, reply.text);
  assert.equal(reply.body.errors[0].extensions.code, code, reply.text);
  assert.match(reply.body.errors[0].message, message);
  assert.equal(reply.body.data, undefined, "a rejected query does not run");
}

Deno.test(
  "depth, alias and cost limits each reject with 400 GRAPHQL.QUERY_REJECTED before anything runs",
  opts,
  async () => {
    const { app: graphql, statements, reset } = await app();
    reset();
    // The schema is 4 levels deep at most: inline fragments count as levels, as in graphql-armor.
    const deep = await post(
      graphql,
      `{ products { nodes { ... on Product { ... on Product { ... on Product { inventory { sku } } } } } } }`,
    );
    assertRejected(
      deep,
      "GRAPHQL.QUERY_REJECTED",
      /^Query depth 7 exceeds the limit of 6; select fewer nested fields$/,
    );

    const aliases = Array.from({ length: 11 }, (_, i) => `a${i}: product(id: "${crypto.randomUUID()}") { id }`).join(
      " ",
    );
    const aliased = await post(graphql, `{ ${aliases} }`);
    assertRejected(aliased, "GRAPHQL.QUERY_REJECTED", /^Query uses 11 aliases, over the limit of 10/);

    const costly = await post(
      graphql,
      `{ a: products(first: 100) { ${FULL_PAGE} } b: products(first: 100) { ${FULL_PAGE} } }`,
    );
    assertRejected(
      costly,
      "GRAPHQL.QUERY_REJECTED",
      /^Query cost [\d.]+ exceeds the limit of 5000; ask for fewer items/,
    );
    assert.equal(statements(), 0, "no SQL for a rejected query");

    // At the limits, the same shapes pass.
    const fullPage = await post(graphql, `{ products(first: 100) { ${FULL_PAGE} } }`);
    assert.equal(fullPage.status, 200, fullPage.text);
    const tenAliases = Array.from({ length: 10 }, (_, i) => `a${i}: product(id: "${crypto.randomUUID()}") { id }`);
    assert.equal((await post(graphql, `{ ${tenAliases.join(" ")} }`)).status, 200);
  },
);

/** ~750 tokens: 20 levels of fragments through `__Type.fields.type.ofType…`, each spreading the next 4 times. */
function introspectionBomb(): string {
  let query = "{ __schema { types { ...A0 } } }\n";
  for (let i = 0; i < 20; i++) {
    query += `fragment A${i} on __Type { fields { type { ...B${i + 1} } } }\n`;
    query += `fragment B${i + 1} on __Type { ...A${i + 1} ofType { ...A${i + 1} ofType { ...A${i + 1} ofType { ...A${
      i + 1
    } } } } }\n`;
  }
  return query + "fragment A20 on __Type { name }";
}

Deno.test(
  "introspection is refused with 400 GRAPHQL.INTROSPECTION_DISABLED, its depth counted; the SDL is served instead",
  opts,
  async () => {
    // On a worker, so a query that blocks the event loop fails the test after the deadline instead of hanging it.
    const bomb = await postWithDeadline(introspectionBomb(), 20_000);
    assert.equal(bomb.status, 400, bomb.text);
    assert.equal(bomb.body.errors[0].extensions.code, "GRAPHQL.INTROSPECTION_DISABLED", bomb.text);
    assert.match(bomb.body.errors[0].message, /^Introspection \("__schema"\) is disabled; read the schema at GET/);
    // graphql-armor skipped everything under __schema by default; counted now, should introspection come back.
    assert.ok(
      bomb.body.errors.some((e: { message: string }) => /^Query depth \d+ exceeds the limit of 6/.test(e.message)),
      bomb.text,
    );
    assert.ok(bomb.elapsedMs < 2_000, `refused in ${bomb.elapsedMs} ms`);

    const { app: graphql, statements, reset } = await app();
    reset();
    for (const query of [getIntrospectionQuery(), '{ __type(name: "Product") { name } }']) {
      const reply = await post(graphql, query);
      assertRejected(
        reply,
        "GRAPHQL.INTROSPECTION_DISABLED",
        new RegExp(`read the schema at GET ${SCHEMA_PATH}$`),
      );
    }
    assert.equal(statements(), 0);
    const sdl = await graphql.request(SCHEMA_PATH);
    assert.equal(sdl.status, 200);
    assert.equal(sdl.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(await sdl.text(), graphqlSchemaSdl);
  },
);

Deno.test(
  "the cost counts `first` from a variable or the schema default as it counts a literal",
  opts,
  async () => {
    const { app: graphql, statements, reset } = await app();
    reset();
    const twoPages = (first: string) =>
      `a: products(first: ${first}) { ${FULL_PAGE} } b: products(first: ${first}) { ${FULL_PAGE} }`;
    const literal = await post(graphql, `{ ${twoPages("100")} }`);
    assertRejected(literal, "GRAPHQL.QUERY_REJECTED", /^Query cost 9925 exceeds the limit of 5000/);
    const variable = await post(graphql, `query($n: Int) { ${twoPages("$n")} }`, { n: 100 });
    assert.deepEqual(variable.body, literal.body);
    const variableDefault = await post(graphql, `query($n: Int = 100) { ${twoPages("$n")} }`);
    assert.deepEqual(variableDefault.body, literal.body);

    // Absent or null, `first` is the schema's 20 (as the resolver reads it): 6 full pages cost 5955.
    const pages = (args: string) =>
      Array.from({ length: 6 }, (_, i) => `p${i}: products${args} { ${FULL_PAGE} }`).join(" ");
    assertRejected(await post(graphql, `{ ${pages("")} }`), "GRAPHQL.QUERY_REJECTED", /^Query cost 5955 exceeds/);
    assertRejected(
      await post(graphql, `{ ${pages("(first: null)")} }`),
      "GRAPHQL.QUERY_REJECTED",
      /^Query cost 5955 exceeds/,
    );
    assert.equal(statements(), 0, "no SQL for a rejected query");

    // One full page through a variable still passes, and so do five default pages.
    const onePage = await post(graphql, `query($n: Int) { products(first: $n) { ${FULL_PAGE} } }`, { n: 100 });
    assert.equal(onePage.status, 200, onePage.text);
    assert.ok(Array.isArray(onePage.body.data.products.nodes), onePage.text);
    const fivePages = Array.from({ length: 5 }, (_, i) => `p${i}: products { ${FULL_PAGE} }`).join(" ");
    assert.equal((await post(graphql, `{ ${fivePages} }`)).status, 200);
  },
);

Deno.test("an oversized or token-heavy query is rejected with GRAPHQL.QUERY_REJECTED", opts, async () => {
  const { app: graphql } = await app();
  const big = `{ products { nodes { id } } } # ${"x".repeat(GRAPHQL_LIMITS.QUERY_BYTES_MAX)}`;
  assertRejected(await post(graphql, big), "GRAPHQL.QUERY_REJECTED", /over the limit of 10240; send a shorter query/);
  const tokens = `{ products { nodes { ${"id ".repeat(2_100)} } } }`;
  assert.ok(new TextEncoder().encode(tokens).byteLength < GRAPHQL_LIMITS.QUERY_BYTES_MAX);
  assertRejected(await post(graphql, tokens), "GRAPHQL.QUERY_REJECTED", /more than 2000 tokens/);
  const body = await replyOf(
    await graphql.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "{ __typename }", variables: { pad: "x".repeat(70_000) } }),
    }),
  );
  assert.equal(body.status, 413);
  assert.equal(body.body.errors[0].extensions.code, "GRAPHQL.PAYLOAD_TOO_LARGE");
});

Deno.test(
  "malformed queries and unknown fields answer 400 with errors, no suggestions, no table names",
  opts,
  async () => {
    const { app: graphql } = await app();
    const cases: [string, Record<string, unknown> | undefined, string, RegExp][] = [
      ["{ product(id: ", undefined, "GRAPHQL.PARSE_FAILED", /^Syntax Error/],
      [
        '{ product(id: "1") { nam } }',
        undefined,
        "GRAPHQL.VALIDATION_FAILED",
        /^Cannot query field "nam" on type "Product"\.$/,
      ],
      [
        "{ products(filter: { minPrice: 12.5 }) { nodes { id } } }",
        undefined,
        "GRAPHQL.VALIDATION_FAILED",
        /Money must be a decimal string/,
      ],
      ['{ products(filter: { colour: "red" }) { nodes { id } } }', undefined, "GRAPHQL.VALIDATION_FAILED", /colour/],
      ["query($id: ID!) { product(id: $id) { id } }", undefined, "GRAPHQL.VALIDATION_FAILED", /\$id/],
      [
        "query($f: ProductFilter) { products(filter: $f) { nodes { id } } }",
        { f: { minPric: "1" } },
        "GRAPHQL.VALIDATION_FAILED",
        /minPric/,
      ],
      [
        "query($f: ProductFilter) { products(filter: $f) { nodes { id } } }",
        { f: { minPrice: "-1" } },
        "GRAPHQL.VALIDATION_FAILED",
        /Money/,
      ],
      ['mutation { product(id: "1") { id } }', undefined, "GRAPHQL.BAD_REQUEST", /queries only/],
      ["query A { __typename } query B { __typename }", undefined, "GRAPHQL.BAD_REQUEST", /operationName/],
      ["", undefined, "GRAPHQL.BAD_REQUEST", /Provide a query/],
    ];
    for (const [query, variables, code, message] of cases) {
      const reply = await post(graphql, query, variables);
      assertRejected(reply, code, message);
      assert.doesNotMatch(reply.text, /Did you mean/);
      assert.doesNotMatch(reply.text, LEAKS);
    }
    const unknownOp = await post(graphql, "query A { __typename }", undefined, { operationName: "B" });
    assertRejected(unknownOp, "GRAPHQL.BAD_REQUEST", /No operation is named "B"/);
  },
);

Deno.test("unreadable requests answer 4xx GraphQL errors", opts, async () => {
  const { app: graphql } = await app();
  const send = async (body: string, contentType = "application/json") =>
    replyOf(await graphql.request("/graphql", { method: "POST", headers: { "content-type": contentType }, body }));
  for (
    const [body, status] of [["{not json", 400], ["[]", 400], ["null", 400], ['{"query": 42}', 400], [
      '{"query": "{ __typename }", "variables": [1]}',
      400,
    ], ['{"query": "{ __typename }", "variables": "{bad"}', 400]] as const
  ) {
    const reply = await send(body);
    assert.equal(reply.status, status, `${body}: ${reply.text}`);
    assert.equal(reply.body.errors[0].extensions.code, "GRAPHQL.BAD_REQUEST");
  }
  assert.equal((await send("{ __typename }", "text/plain")).status, 415);
  const graphqlBody = await send("{ __typename }", "application/graphql");
  assert.deepEqual(graphqlBody.body, { data: { __typename: "Query" } });
  const charset = await send('{"query": "{ __typename }"}', "application/json; charset=utf-8");
  assert.deepEqual(charset.body, { data: { __typename: "Query" } });
});

Deno.test("a query in the URL of a POST cannot bypass the checks of the body's query", opts, async () => {
  const { app: graphql } = await app();
  const deep = `{ __type(name: "Product") { fields { type { ofType { ofType { ofType { name } } } } } } }`;
  const reply = await replyOf(
    await graphql.request(`/graphql?query=${encodeURIComponent(deep)}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "{ __typename }" }),
    }),
  );
  assert.deepEqual(reply.body, { data: { __typename: "Query" } });
});

/** Query-ish text: fragments of the real API glued at random, plus plain random strings. */
const queryText = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.array(
    fc.constantFrom(
      "{",
      "}",
      "(",
      ")",
      ":",
      "...",
      "query",
      "mutation",
      "fragment",
      "on",
      "Product",
      "product",
      "products",
      "productInventory",
      "id",
      "sku",
      "name",
      "price",
      "inventory",
      "available",
      "nodes",
      "pageInfo",
      "first",
      "after",
      "filter",
      "minPrice",
      '"10"',
      "100",
      "-1",
      '"x"',
      "$v",
      "@skip(if: true)",
      "__typename",
      "__schema",
      "a:",
      '"00000000-0000-0000-0000-000000000000"',
      "\\u0000",
      "#",
      ",",
    ),
    { maxLength: 60 },
  ).map((parts) => parts.join(" ")),
);

Deno.test("property: random query strings and variables never produce a 5xx", opts, async () => {
  const { app: graphql } = await app();
  await fc.assert(
    fc.asyncProperty(
      queryText,
      fc.option(fc.dictionary(fc.constantFrom("v", "id", "f"), fc.jsonValue({ maxDepth: 2 })), { nil: undefined }),
      fc.boolean(),
      async (query, variables, useGet) => {
        const reply = useGet
          ? await replyOf(await graphql.request(`/graphql?query=${encodeURIComponent(query)}`))
          : await post(graphql, query, variables as Record<string, unknown> | undefined);
        assert.ok(reply.status < 500, `${reply.status} for ${JSON.stringify(query)}: ${reply.text}`);
        assert.ok(reply.body && typeof reply.body === "object", reply.text);
        if (reply.status >= 400) {
          assert.ok(Array.isArray(reply.body.errors) && reply.body.errors.length > 0, reply.text);
          for (const error of reply.body.errors) assert.equal(typeof error.extensions?.code, "string", reply.text);
        }
        assert.doesNotMatch(reply.text, LEAKS);
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("close the shared database", opts, async () => {
  if (shared) await (await shared).close();
});

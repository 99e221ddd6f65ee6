/**
 * @module
 * Serves the e-commerce OpenAPI document and an interactive reference (Scalar). The reference page is
 * HTML that loads the Scalar UI script from its CDN (jsDelivr): the standalone `@scalar/api-reference`
 * bundle is not among the project's npm dependencies, so it cannot be served from node_modules. Without
 * internet access the page stays blank; the JSON document is unaffected.
 */
import { Scalar } from "@scalar/hono-api-reference";
import { Hono } from "hono";
import { installProblemHandlers } from "../../../shared/http/problem_response.ts";
import { ecommerceOpenApiDocument } from "./document.ts";

export const OPENAPI_DOCUMENT_PATH = "/api/v1/ecommerce/openapi.json";
export const OPENAPI_DOCS_PATH = "/api/v1/ecommerce/docs";

/** `GET /api/v1/ecommerce/openapi.json` and `GET /api/v1/ecommerce/docs` (public). */
export function createOpenApiRoutes(): Hono {
  const app = new Hono();
  installProblemHandlers(app);
  // Serialised once: the document is a constant.
  const body = JSON.stringify(ecommerceOpenApiDocument);
  app.get(OPENAPI_DOCUMENT_PATH, (c) => {
    c.header("cache-control", "public, max-age=300");
    return c.body(body, 200, { "content-type": "application/json; charset=utf-8" });
  });
  app.get(
    OPENAPI_DOCS_PATH,
    Scalar({ url: OPENAPI_DOCUMENT_PATH, pageTitle: "BitVelocity e-commerce API" }),
  );
  return app;
}

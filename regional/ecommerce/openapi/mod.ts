/** @module The OpenAPI 3.1 document of the e-commerce REST API and the routes that serve it. */
export { ecommerceOpenApiDocument } from "./document.ts";
export { createOpenApiRoutes, OPENAPI_DOCS_PATH, OPENAPI_DOCUMENT_PATH } from "./routes.ts";
export type { OpenApiDocument } from "./_types.ts";

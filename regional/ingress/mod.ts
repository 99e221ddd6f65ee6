/** @module The regional ingress: one HTTP entry per region, routing by path to its deployables. */
export { createIngressApp, serviceUrlsOf } from "./ingress.ts";
export { ROUTES, serviceForPath } from "./routes.ts";

/**
 * @module
 * RFC 9457 problem details with stable codes, and the one mapping from a code to HTTP and gRPC status.
 * Domain code throws {@linkcode ProblemError}; the HTTP and gRPC edges turn it into a response here and
 * nowhere else.
 */

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GrpcStatus = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
});

/** The one table from HTTP status to gRPC status (grpc-gateway's mapping, inverted). */
const grpcByHttp: Readonly<Record<number, number>> = Object.freeze({
  400: GrpcStatus.INVALID_ARGUMENT,
  401: GrpcStatus.UNAUTHENTICATED,
  402: GrpcStatus.FAILED_PRECONDITION,
  403: GrpcStatus.PERMISSION_DENIED,
  404: GrpcStatus.NOT_FOUND,
  408: GrpcStatus.DEADLINE_EXCEEDED,
  409: GrpcStatus.ABORTED,
  412: GrpcStatus.FAILED_PRECONDITION,
  413: GrpcStatus.INVALID_ARGUMENT,
  415: GrpcStatus.INVALID_ARGUMENT,
  // Misdirected: this server is not the one that may answer (the order writer is another region).
  421: GrpcStatus.FAILED_PRECONDITION,
  422: GrpcStatus.FAILED_PRECONDITION,
  429: GrpcStatus.RESOURCE_EXHAUSTED,
  500: GrpcStatus.INTERNAL,
  501: GrpcStatus.UNIMPLEMENTED,
  // Not UNAVAILABLE (gRPC's own HTTP mapping): that reads as "safe to retry" here (`problemCodeOfGrpc`), while a
  // 502 means the upstream took the request and broke off its answer, so the outcome is unknown.
  502: GrpcStatus.INTERNAL,
  503: GrpcStatus.UNAVAILABLE,
  504: GrpcStatus.DEADLINE_EXCEEDED,
});

/**
 * Stable problem codes: `<CONTEXT>.<REASON>`. Clients branch on `code`, never on `title` or `detail`.
 * Each code has exactly one HTTP status.
 */
export const problemCodes = Object.freeze(
  {
    "COMMON.VALIDATION_FAILED": 400,
    "COMMON.MALFORMED_JSON": 400,
    "COMMON.UNSUPPORTED_MEDIA_TYPE": 415,
    "COMMON.PAYLOAD_TOO_LARGE": 413,
    "COMMON.REQUEST_INCOMPLETE": 400,
    /** The client's request body stalled: no part of it arrived within the server's idle deadline. */
    "COMMON.REQUEST_TIMEOUT": 408,
    "COMMON.NOT_FOUND": 404,
    "COMMON.METHOD_NOT_ALLOWED": 405,
    /** A method this server does not implement for any resource (methods are case-sensitive: `post` is one). */
    "COMMON.METHOD_NOT_IMPLEMENTED": 501,
    "COMMON.CONFLICT": 409,
    "COMMON.RATE_LIMITED": 429,
    "COMMON.UPSTREAM_UNAVAILABLE": 503,
    "COMMON.UPSTREAM_TIMEOUT": 504,
    /** The upstream sent its headers, then its connection failed before the body was complete. */
    "COMMON.UPSTREAM_INCOMPLETE": 502,
    "COMMON.INTERNAL": 500,
    /** A service-to-service request whose signature is missing, wrong or outside its time window. */
    "COMMON.SIGNATURE_INVALID": 401,
    "AUTH.UNAUTHENTICATED": 401,
    "AUTH.TOKEN_INVALID": 401,
    "AUTH.TOKEN_EXPIRED": 401,
    "AUTH.INVALID_CREDENTIALS": 401,
    "AUTH.REFRESH_TOKEN_INVALID": 401,
    "AUTH.FORBIDDEN": 403,
    "AUTH.EMAIL_TAKEN": 409,
    "AUTH.USER_NOT_FOUND": 404,
    "AUTH.LOGIN_THROTTLED": 429,
    "AUTH.SIGNUP_THROTTLED": 429,
    "ECOMMERCE.ORDER_NOT_FOUND": 404,
    "ECOMMERCE.ORDER_NOT_CANCELABLE": 409,
    "ECOMMERCE.ORDER_INVALID_TRANSITION": 409,
    "ECOMMERCE.INSUFFICIENT_STOCK": 409,
    "ECOMMERCE.PAYMENT_DECLINED": 402,
    "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED": 400,
    "ECOMMERCE.IDEMPOTENCY_KEY_REUSED": 422,
    "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT": 409,
    "ECOMMERCE.PAYMENT_UNAVAILABLE": 503,
    /** The order's stock hold lapsed (or would lapse before a charge could finish): the order is canceled. */
    "ECOMMERCE.RESERVATION_EXPIRED": 409,
    "ECOMMERCE.PRODUCT_NOT_FOUND": 404,
    "ECOMMERCE.STOCK_NEGATIVE": 409,
    "ECOMMERCE.SKU_TAKEN": 409,
    /** `If-Match` on a product write names none of its current version: someone changed it since it was read. */
    "ECOMMERCE.PRODUCT_VERSION_MISMATCH": 412,
    "ECOMMERCE.CART_NOT_FOUND": 404,
    "ECOMMERCE.CURRENCY_MISMATCH": 422,
    /** An order write reached a region that is not the order writer and could not be forwarded to it. */
    "ECOMMERCE.ORDER_WRITER_ELSEWHERE": 421,
    /** A webhook URL whose host the egress policy (`BV_WEBHOOK_EGRESS`) refuses: loopback, private, metadata… */
    "ECOMMERCE.WEBHOOK_DESTINATION_NOT_ALLOWED": 400,
  } as const,
);

export type ProblemCode = keyof typeof problemCodes;

/** The RFC 9457 body. `code` and `traceId` are extension members. */
export interface ProblemDetails {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly instance?: string;
  readonly traceId?: string;
  readonly errors?: readonly { readonly path: string; readonly message: string }[];
}

/** An error that carries a stable problem code; thrown by domain code, rendered at the protocol edge. */
export class ProblemError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly errors?: ProblemDetails["errors"];
  readonly headers?: Readonly<Record<string, string>>;

  constructor(
    code: ProblemCode,
    detail: string,
    options?: {
      readonly errors?: ProblemDetails["errors"];
      readonly headers?: Readonly<Record<string, string>>;
      readonly cause?: unknown;
    },
  ) {
    super(detail, { cause: options?.cause });
    this.name = "ProblemError";
    this.code = code;
    this.status = problemCodes[code];
    this.errors = options?.errors;
    this.headers = options?.headers;
  }
}

const titles: Readonly<Record<number, string>> = Object.freeze({
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
});

/** Builds the problem body for a code; `type` is a stable URN so clients need no docs site to resolve it. */
export function problemOf(
  code: ProblemCode,
  detail: string,
  extra?: { readonly instance?: string; readonly traceId?: string; readonly errors?: ProblemDetails["errors"] },
): ProblemDetails {
  const status = problemCodes[code];
  return {
    type: `urn:bitvelocity:problem:${code.toLowerCase()}`,
    title: titles[status] ?? "Error",
    status,
    detail,
    code,
    ...(extra?.instance ? { instance: extra.instance } : {}),
    ...(extra?.traceId ? { traceId: extra.traceId } : {}),
    ...(extra?.errors ? { errors: extra.errors } : {}),
  };
}

/** The gRPC status for an HTTP status (unknown 4xx → FAILED_PRECONDITION, unknown 5xx → INTERNAL). */
export function grpcStatusOfHttp(status: number): number {
  return grpcByHttp[status] ?? (status >= 500 ? GrpcStatus.INTERNAL : GrpcStatus.FAILED_PRECONDITION);
}

/** The gRPC status for a problem code. */
export function grpcStatusOf(code: ProblemCode): number {
  return grpcStatusOfHttp(problemCodes[code]);
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

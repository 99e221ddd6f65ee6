/** @module The slice of the OpenAPI 3.1 object model this document uses, so the document is type-checked. */

/** A JSON Schema (draft 2020-12, as OpenAPI 3.1 uses it), or a reference to one. */
export type SchemaObject =
  | { readonly $ref: string }
  | {
    readonly type?: string | readonly string[];
    readonly description?: string;
    readonly format?: string;
    readonly pattern?: string;
    readonly enum?: readonly unknown[];
    readonly minimum?: number;
    readonly maximum?: number;
    readonly minLength?: number;
    readonly maxLength?: number;
    readonly minItems?: number;
    readonly maxItems?: number;
    readonly minProperties?: number;
    readonly default?: unknown;
    readonly examples?: readonly unknown[];
    readonly properties?: Readonly<Record<string, SchemaObject>>;
    readonly required?: readonly string[];
    readonly additionalProperties?: boolean | SchemaObject;
    readonly items?: SchemaObject;
    readonly oneOf?: readonly SchemaObject[];
  };

export interface ParameterObject {
  readonly name: string;
  readonly in: "path" | "query" | "header";
  readonly required?: boolean;
  readonly description?: string;
  readonly schema: SchemaObject;
}

export interface MediaTypeObject {
  readonly schema: SchemaObject;
}

export interface ResponseObject {
  readonly description: string;
  readonly headers?: Readonly<Record<string, { readonly description: string; readonly schema: SchemaObject }>>;
  readonly content?: Readonly<Record<string, MediaTypeObject>>;
}

export interface OperationObject {
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly string[];
  readonly security?: readonly Readonly<Record<string, readonly string[]>>[];
  readonly parameters?: readonly ParameterObject[];
  readonly requestBody?: {
    readonly required: boolean;
    readonly content: Readonly<Record<string, MediaTypeObject>>;
  };
  readonly responses: Readonly<Record<string, ResponseObject>>;
}

export type HttpMethod = "get" | "put" | "post" | "delete" | "patch";

export type PathItemObject = Partial<Readonly<Record<HttpMethod, OperationObject>>>;

export interface OpenApiDocument {
  readonly openapi: string;
  readonly info: { readonly title: string; readonly version: string; readonly description?: string };
  readonly servers?: readonly { readonly url: string; readonly description?: string }[];
  readonly tags: readonly { readonly name: string; readonly description: string }[];
  readonly paths: Readonly<Record<string, PathItemObject>>;
  readonly components: {
    readonly schemas: Readonly<Record<string, SchemaObject>>;
    readonly securitySchemes: Readonly<Record<string, unknown>>;
  };
}

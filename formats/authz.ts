// The authorization annotation (`x-warden-authz`) that OpenAPI operations and MCP tools, resources
// and prompts carry: who may call, under which conditions.
import { validator } from './schema.js';

/** One way to be granted a call; every condition it states must hold (AND). */
export interface Grant {
  /** SPIFFE ID of the caller; `*` matches within one path segment, `**` across segments. */
  principal?: string;
  /** The caller's Kubernetes namespace (from its SPIFFE ID). */
  namespace?: string;
  /** JWT scopes the caller's token must carry (all of them), from `scope` or `scp`. */
  scopes?: string[];
  /** JWT claims: claim name → accepted values (one must equal the claim, or be in it if it is a list). */
  claims?: Record<string, Array<string | number | boolean>>;
  /** Required on grants of destructive MCP tools: the grant says, in writing, that it grants destruction. */
  destructive?: boolean;
  /** Human note shown in reviews and decision reasons. */
  description?: string;
}

/** The annotation: public, or a list of grants (OR), plus fields to mask in decision logs. */
export interface AuthzAnnotation {
  /** Anyone may call, including anonymous callers. */
  public?: boolean;
  allow?: Grant[];
  /**
   * What is masked before a decision leaves the pod: dotted paths inside the JSON body and the MCP
   * arguments (`payment.card_number`), a request header (`header:x-api-key`, any case), a query
   * parameter (`query:api_key`, its decoded name, every value) or, on an OpenAPI operation, a path
   * parameter of its template (`path:key` for `/keys/{key}`: that segment, in the path too).
   */
  sensitive?: string[];
}

/** The extension key in OpenAPI operations and MCP entries. */
export const AUTHZ_EXTENSION = 'x-warden-authz';

const grantSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    principal: { type: 'string', pattern: '^spiffe://' },
    namespace: { type: 'string', minLength: 1 },
    scopes: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
    claims: {
      type: 'object',
      additionalProperties: { type: 'array', items: { type: ['string', 'number', 'boolean'] }, minItems: 1 },
    },
    destructive: { type: 'boolean' },
    description: { type: 'string' },
  },
} as const;

/** JSON Schema of AuthzAnnotation. */
export const authzAnnotationSchema = {
  $id: 'https://warden.dev/schemas/authz.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    public: { type: 'boolean' },
    allow: { type: 'array', items: grantSchema },
    // `header:` takes a header name (an HTTP token), `query:` a parameter name, `path:` a path parameter of
    // the operation's template (as OpenAPI names one); anything else is a dotted path of non-empty keys.
    sensitive: { type: 'array', items: { type: 'string', pattern: "^(header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|query:.+|path:[A-Za-z0-9_.-]+|(?!header:|query:|path:)[^.]+(\\.[^.]+)*)$" } },
  },
} as const;

export const authzAnnotation = validator<AuthzAnnotation>(authzAnnotationSchema);

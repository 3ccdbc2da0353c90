// admission.k8s.io/v1 AdmissionReview: what the API server POSTs to a validating webhook and what it
// expects back. @kubernetes/client-node exports no types for it, so they are defined here, once.
import { validator } from './schema.js';

/** API version the webhook accepts and answers with. */
export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

/** Group/version/kind as the API server names it in a request. */
export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

/** Group/version/resource. */
export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

/** The user on whose behalf the request is made. */
export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** `request` of an AdmissionReview. */
export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  requestKind?: GroupVersionKind;
  requestResource?: GroupVersionResource;
  requestSubResource?: string;
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  userInfo: UserInfo;
  object?: Record<string, unknown> | null;
  oldObject?: Record<string, unknown> | null;
  dryRun?: boolean;
  options?: Record<string, unknown> | null;
}

/** `response.status` when a request is refused (a metav1.Status subset). */
export interface AdmissionStatus {
  code?: number;
  message?: string;
  reason?: string;
}

/** `response` of an AdmissionReview. */
export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: AdmissionStatus;
  /** Shown by kubectl as `Warning: …` lines (each ≤ 256 characters is kept by the API server). */
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
  /** A mutating webhook's change to the object: base64 of a JSON Patch (RFC 6902) document. */
  patchType?: 'JSONPatch';
  patch?: string;
}

/** The envelope in both directions. */
export interface AdmissionReview {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

const gvk = {
  type: 'object',
  required: ['group', 'version', 'kind'],
  properties: { group: { type: 'string' }, version: { type: 'string' }, kind: { type: 'string', minLength: 1 } },
} as const;
const gvr = {
  type: 'object',
  required: ['group', 'version', 'resource'],
  properties: { group: { type: 'string' }, version: { type: 'string' }, resource: { type: 'string', minLength: 1 } },
} as const;

/** JSON Schema of an incoming AdmissionReview (request side; unknown fields tolerated, as the API evolves). */
export const admissionReviewRequestSchema = {
  $id: 'https://warden.dev/schemas/admission-review-request.json',
  type: 'object',
  required: ['apiVersion', 'kind', 'request'],
  properties: {
    apiVersion: { const: ADMISSION_API_VERSION },
    kind: { const: 'AdmissionReview' },
    request: {
      type: 'object',
      required: ['uid', 'kind', 'resource', 'operation', 'userInfo'],
      properties: {
        uid: { type: 'string', minLength: 1, maxLength: 128 },
        kind: gvk,
        resource: gvr,
        subResource: { type: 'string' },
        requestKind: gvk,
        requestResource: gvr,
        requestSubResource: { type: 'string' },
        name: { type: 'string' },
        namespace: { type: 'string' },
        operation: { enum: ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] },
        userInfo: { type: 'object' },
        object: { type: ['object', 'null'] },
        oldObject: { type: ['object', 'null'] },
        dryRun: { type: 'boolean' },
        options: { type: ['object', 'null'] },
      },
    },
  },
} as const;

/** JSON Schema of the webhook's answer. */
export const admissionReviewResponseSchema = {
  $id: 'https://warden.dev/schemas/admission-review-response.json',
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'response'],
  properties: {
    apiVersion: { const: ADMISSION_API_VERSION },
    kind: { const: 'AdmissionReview' },
    response: {
      type: 'object',
      additionalProperties: false,
      required: ['uid', 'allowed'],
      properties: {
        uid: { type: 'string' },
        allowed: { type: 'boolean' },
        status: {
          type: 'object',
          additionalProperties: false,
          properties: { code: { type: 'integer' }, message: { type: 'string' }, reason: { type: 'string' } },
        },
        warnings: { type: 'array', items: { type: 'string' } },
        auditAnnotations: { type: 'object', additionalProperties: { type: 'string' } },
        patchType: { const: 'JSONPatch' },
        patch: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' },
      },
    },
  },
} as const;

export const admissionReviewRequest = validator<AdmissionReview & { request: AdmissionRequest }>(admissionReviewRequestSchema);
export const admissionReviewResponse = validator<AdmissionReview & { response: AdmissionResponse }>(admissionReviewResponseSchema);

/** One violation as the admission guardrails (`warden/admission/violations`) return it. */
export interface AdmissionViolation {
  rule: string;
  msg: string;
  field?: string;
  container?: string;
}

/** Entrypoint of the guardrails module in bundles/admission.tar.gz. */
export const ADMISSION_ENTRYPOINT = 'warden/admission/violations';

/** JSON Schema of the guardrails' result (a list of violations). */
export const admissionViolationsSchema = {
  $id: 'https://warden.dev/schemas/admission-violations.json',
  type: 'array',
  items: {
    type: 'object',
    required: ['rule', 'msg'],
    properties: { rule: { type: 'string' }, msg: { type: 'string' }, field: { type: 'string' }, container: { type: 'string' } },
  },
} as const;

export const admissionViolations = validator<AdmissionViolation[]>(admissionViolationsSchema);

// MCP authorization (spec 2025-06-18 and later): the workload as an OAuth 2.0 protected resource.
// Serves RFC 9728 metadata, answers missing or unusable tokens with a 401 that points at it, and
// demands tokens issued for this resource (RFC 8707 audience binding), so a token minted for
// another service cannot be replayed here.
import type { Source } from '../../formats/input.js';
import type { WorkloadManifest } from '../../formats/workload.js';

/** The workload manifest's `mcp.oauth`. */
export type OAuthConfig = NonNullable<NonNullable<WorkloadManifest['mcp']>['oauth']>;

/** Path of the metadata document for a resource (RFC 9728 §3.1: the resource's path after the well-known prefix). */
export function metadataPaths(cfg: OAuthConfig): string[] {
  const base = '/.well-known/oauth-protected-resource';
  const path = new URL(cfg.resource).pathname.replace(/\/+$/, '');
  return path ? [`${base}${path}`, base] : [base];
}

/** The metadata document's absolute URL, as the WWW-Authenticate header names it. */
export function metadataUrl(cfg: OAuthConfig): string {
  const u = new URL(cfg.resource);
  return `${u.origin}${metadataPaths(cfg)[0]}`;
}

/** RFC 9728 protected resource metadata. */
export function protectedResourceMetadata(cfg: OAuthConfig): Record<string, unknown> {
  return {
    resource: cfg.resource,
    authorization_servers: cfg.authorizationServers,
    bearer_methods_supported: ['header'],
    ...(cfg.scopes ? { scopes_supported: cfg.scopes } : {}),
  };
}

/** A refusal: status and the WWW-Authenticate challenge to send. */
export interface OAuthRefusal {
  status: 401 | 403;
  challenge: string;
  reason: string;
}

function challenge(cfg: OAuthConfig, error?: string, description?: string): string {
  const parts = [`resource_metadata="${metadataUrl(cfg)}"`];
  if (cfg.scopes?.length) parts.push(`scope="${cfg.scopes.join(' ')}"`);
  if (error) parts.push(`error="${error}"`);
  if (description) parts.push(`error_description="${description.replace(/["\\]/g, '')}"`);
  return `Bearer ${parts.join(', ')}`;
}

/**
 * Check the caller against the resource. `source` is the verified identity (signature, issuer and
 * expiry already checked by the identity step); `authorization` is the raw header, only to tell a
 * missing token from one that did not verify.
 */
export function checkBearer(cfg: OAuthConfig, source: Source, authorization: string | undefined): OAuthRefusal | undefined {
  const presented = typeof authorization === 'string' && /^bearer\s+\S/i.test(authorization);
  if (source.authn !== 'jwt') {
    return presented
      ? { status: 401, challenge: challenge(cfg, 'invalid_token', 'the bearer token did not verify'), reason: 'bearer token did not verify' }
      : { status: 401, challenge: challenge(cfg), reason: 'no bearer token' };
  }
  const aud = source.claims.aud;
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (!audiences.includes(cfg.resource)) {
    return { status: 401, challenge: challenge(cfg, 'invalid_token', `the token is not issued for ${cfg.resource}`), reason: `token audience ${JSON.stringify(aud)} is not this resource` };
  }
  return undefined;
}

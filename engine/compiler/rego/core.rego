# Warden core: shipped unchanged inside every workload bundle.
#
# The decision for a call is assembled here from three sources:
#   data.warden.generated  - grants generated from the workload's spec annotations (x-warden-authz)
#   data.warden.workload   - the workload's hand-written Rego (allow / deny / denial)
#   data.warden.core       - the rules below that hold for every workload (default deny, MCP safety)
# A call is allowed when something grants it and nothing denies it. Everything else is denied.
package warden.core

import rego.v1

# ---------------------------------------------------------------- the caller

# A workload identity (a SPIFFE ID) is established only by mTLS or the trusted mesh header. A bearer
# token never poses as a workload, whatever its `sub` says: grants naming a SPIFFE principal or a
# namespace hold for workload callers only (the proxy also refuses a token whose `sub` is a SPIFFE ID).
workload_caller if input.source.authn in {"mtls", "header"}

# Namespace of a Kubernetes SPIFFE ID: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
caller_namespace := parts[4] if {
	workload_caller
	parts := split(input.source.principal, "/")
	count(parts) == 7
	parts[0] == "spiffe:"
	parts[3] == "ns"
	parts[5] == "sa"
}

authenticated if {
	input.source.authn != "none"
	input.source.principal != "anonymous"
}

# JWT scopes: the space-separated `scope` claim (RFC 8693) or an `scp` list.
caller_scopes contains s if {
	is_string(input.source.claims.scope)
	some s in split(input.source.claims.scope, " ")
	s != ""
}

caller_scopes contains s if {
	is_array(input.source.claims.scp)
	some s in input.source.claims.scp
	is_string(s)
}

# All of `required` are among the caller's scopes; JWT callers only.
has_scopes(required) if {
	input.source.authn == "jwt"
	every s in required {
		s in caller_scopes
	}
}

# The claim equals one of `accepted`, or is a list holding one of them; JWT callers only.
claim_matches(name, accepted) if {
	input.source.authn == "jwt"
	some v in accepted
	input.source.claims[name] == v
}

claim_matches(name, accepted) if {
	input.source.authn == "jwt"
	is_array(input.source.claims[name])
	some v in accepted
	v in input.source.claims[name]
}

# `*` matches within one path segment of a SPIFFE ID, `**` across segments; workload callers only.
principal_matches(pattern) if {
	workload_caller
	glob.match(pattern, ["/"], input.source.principal)
}

# ---------------------------------------------------------------- HTTP routing

http_call if not input.mcp

segment_matches(p, s) if {
	is_string(p)
	p == s
}

segment_matches(p, s) if {
	is_object(p)
	s != ""
}

route_matches(r) if {
	every i, p in r.segments {
		segment_matches(p, input.request.segments[i])
	}
}

# The route the call matched. Candidates share the method and the number of segments (the index into
# the method's list), and the segment at the bucket's index position is the literal they are listed
# under or a parameter (data is indexed that way): a call is matched against a few templates however
# many the spec declares. As in OpenAPI, among matching templates literal segments win over
# parameters, left to right (a higher rank). Arrays, not sets: no route object is hashed.
route := r if {
	http_call
	bucket := data.warden.spec.http.routes[input.request.method][count(input.request.segments)]
	matching := array.concat(
		[r | some r in bucket.literal[input.request.segments[bucket.position]]; route_matches(r)],
		[r | some r in bucket.param; route_matches(r)],
	)
	best := max([r.rank | some r in matching])
	some r in matching
	r.rank == best
}

# A segment that differs only by case from a literal the spec routes at its place, in a route whose other
# segments the call matches regardless of case (same method and number of segments): express and ASP.NET
# Core route regardless of case by default, so such an app takes /orders/EXPORT for the literal
# /orders/export while the routing here matched the template /orders/{id}. `folded` lists, per position
# and lower-cased literal, its spellings and each route holding it (its literals lower-cased, as Rego's
# lower does).
deny contains concat("", ["the path segment \"", s, "\" differs only by case from \"", r.spelling, "\", which the spec routes: an app that routes regardless of case would read another operation"]) if {
	http_call
	bucket := data.warden.spec.http.routes[input.request.method][count(input.request.segments)]
	some i, s in input.request.segments
	literal := bucket.folded[i][lower(s)]
	not s in literal.spellings
	some r in literal.routes
	folded_route_matches(r.route, i)
}

# A segment that is such a literal with a format suffix: Rails routes every path with an optional
# `(.:format)` (and Spring MVC before 5.3 matched `.*` suffixes), so /orders/export.json is the literal
# /orders/export there, while the routing here matched /orders/{id}. A literal spelled with its dot is itself.
deny contains concat("", ["the path segment \"", s, "\" is \"", r.spelling, "\", which the spec routes, with a format suffix: an app that reads suffixes as formats (Rails) would read another operation"]) if {
	http_call
	bucket := data.warden.spec.http.routes[input.request.method][count(input.request.segments)]
	some i, s in input.request.segments
	dot := indexof(s, ".")
	dot > 0
	not s in object.get(bucket.folded[i], [lower(s), "spellings"], [])
	some r in bucket.folded[i][lower(substring(s, 0, dot))].routes
	folded_route_matches(r.route, i)
}

# The call's segments, but the i-th, match a route regardless of case: its lower-cased literals, or any
# non-empty segment for a parameter.
folded_route_matches(route, i) if {
	every j, p in route {
		folded_segment_matches(p, j, i)
	}
}

folded_segment_matches(_, j, i) if j == i

folded_segment_matches(p, j, i) if {
	j != i
	is_string(p)
	lower(input.request.segments[j]) == p
}

folded_segment_matches(p, j, i) if {
	j != i
	is_object(p)
	input.request.segments[j] != ""
}

operation := {
	"id": route.id,
	"params": {p.param: input.request.segments[i] | some i, p in route.segments; is_object(p)},
}

# ---------------------------------------------------------------- MCP

mcp_call if input.mcp

tool := data.warden.spec.mcp.tools[input.mcp.tool] if input.mcp.method == "tools/call"

tool_granted if {
	some g in data.warden.generated.tool_grants
	g.name == input.mcp.tool
}

# Tools this caller is offered by tools/list: those an annotation grants it, whatever the arguments.
# Tool grants are keyed by tool name and read only the caller, so no `with input.mcp` is needed.
visible_tools contains name if {
	some name, _ in data.warden.spec.mcp.tools
	some _ in data.warden.generated.tools[name].grants
}

# Session plumbing, granted to any caller that may call at least one tool, resource or prompt.
session_methods := [
	"initialize", "ping", "tools/list", "resources/list", "resources/templates/list", "prompts/list",
	"notifications/initialized", "notifications/cancelled", "notifications/progress",
	"notifications/roots/list_changed", "completion/complete", "logging/setLevel",
]

may_use_mcp if {
	some name, _ in data.warden.spec.mcp.tools
	some _ in data.warden.generated.tools[name].grants
}

may_use_mcp if {
	some g in data.warden.generated.grants
	g.kind in ["resource", "prompt"]
}

grants contains {"kind": "mcp", "name": input.mcp.method, "reason": concat("", ["MCP ", input.mcp.method, ": the caller may use at least one tool, resource or prompt"])} if {
	input.mcp.method in session_methods
	may_use_mcp
}

# The Streamable HTTP endpoint's GET (server stream) and DELETE (end session) carry no JSON-RPC call.
grants contains {"kind": "mcp", "name": input.request.method, "reason": concat("", ["MCP transport ", input.request.method, " ", input.request.path])} if {
	input.request.path in data.warden.spec.mcp.transport_paths
	input.request.method in ["GET", "DELETE"]
	http_call
	may_use_mcp
}

deny contains "tools/call without a tool name" if {
	input.mcp.method == "tools/call"
	not is_string(input.mcp.tool)
}

deny contains concat("", ["tool ", input.mcp.tool, " is not in the compiled tool list"]) if {
	input.mcp.method == "tools/call"
	is_string(input.mcp.tool)
	not data.warden.spec.mcp.tools[input.mcp.tool]
}

deny contains concat("", ["tool ", input.mcp.tool, " is destructive and no grant marked destructive: true covers this caller"]) if {
	tool.destructive
	not tool_granted
}

# ---------------------------------------------------------------- the decision

denials contains r if some r in deny

denials contains r if some r in data.warden.generated.deny

denials contains r if some r in data.warden.workload.deny

grant_reasons contains g.reason if some g in grants

grant_reasons contains g.reason if some g in data.warden.generated.grants

grant_reasons contains "allowed by the workload's Rego (data.warden.workload.allow)" if data.warden.workload.allow == true

call := concat(" ", [input.request.method, input.request.path]) if http_call

call := concat(" ", ["MCP", input.mcp.method, object.get(input.mcp, "tool", object.get(input.mcp, "name", object.get(input.mcp, "uri", "")))]) if mcp_call

base["operation"] := route.id

default denial_shape := {}

denial_shape := s if {
	s := data.warden.workload.denial
	is_object(s)
}

default decision := {"allow": false, "reasons": ["the policy could not decide this call (default deny)"]}

decision := object.union(object.union(denial_shape, base), {"allow": false, "reasons": sort(denials)}) if count(denials) > 0

decision := object.union(base, {"allow": true, "reasons": sort(grant_reasons)}) if {
	count(denials) == 0
	count(grant_reasons) > 0
}

decision := object.union(object.union(denial_shape, base), {"allow": false, "reasons": [concat("", ["no rule grants ", input.source.principal, " ", call])]}) if {
	count(denials) == 0
	count(grant_reasons) == 0
}

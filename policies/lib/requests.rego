# Shared helpers about requests, usable from any workload's Rego as data.warden.lib.requests.
package warden.lib.requests

import rego.v1

# Methods that change state.
write_methods := {"POST", "PUT", "PATCH", "DELETE"}

is_write if input.request.method in write_methods

# A request carries the header with a non-empty value (header names arrive lower-cased).
has_header(name) if {
	v := input.request.headers[lower(name)]
	v != ""
}

# The caller's token says it was obtained with multi-factor authentication (OIDC amr claim).
mfa if "mfa" in input.source.claims.amr

# Liveness/readiness probes: the kubelet calls them without an identity.
is_probe if {
	input.request.method == "GET"
	input.request.path in {"/healthz", "/readyz", "/livez"}
}

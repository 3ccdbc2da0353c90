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

# The request carries a body the sidecar did not read into input.request.body: one of a type it does not
# read as JSON (a form, text/plain, no type at all; a Go or Starlette app may decode it as JSON anyway), or
# any body where none is read (the express middleware, ext_authz, --json-body 0). Rules that deny on
# fields of the body pass a body they cannot see, so a workload with such rules denies this too:
#   deny contains "the body could not be read" if requests.unread_body
# A JSON body that is the literal false counts as unread (the rule tests the body for truth): denied too.
unread_body if {
	carries_body
	not input.request.body
}

# A body follows the head: chunked, or a Content-Length above zero.
carries_body if input.request.headers["transfer-encoding"]

carries_body if to_number(input.request.headers["content-length"]) > 0

# Orders rules beyond the spec annotations.
package warden.workload

import data.warden.lib.requests
import rego.v1

allow if requests.is_probe

# People (JWT callers) changing orders must have used MFA; services are exempt.
deny contains "changing orders as a person requires multi-factor authentication" if {
	requests.is_write
	input.source.authn == "jwt"
	not requests.mfa
}

# Storefront rules beyond the spec annotations.
package warden.workload

import data.warden.lib.requests
import rego.v1

# Kubelet probes carry no identity.
allow if requests.is_probe

# Payment needs a verified email address, whatever the token's scopes say.
deny contains "checkout requires a verified email address" if {
	data.warden.core.operation.id == "checkout"
	input.source.claims.email_verified != true
}

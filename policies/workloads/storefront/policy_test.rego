package warden.workload_test

import rego.v1

customer := {"principal": "customer-17", "authn": "jwt", "address": "10.0.0.9", "claims": {"sub": "customer-17", "scope": "cart:write checkout", "email_verified": true}}

anonymous := {"principal": "anonymous", "authn": "none", "address": "10.0.0.9", "claims": {}}

req(method, path) := {"method": method, "path": path, "segments": array.slice(split(path, "/"), 1, count(split(path, "/"))), "query": {}, "headers": {}}

test_anyone_browses if {
	d := data.warden.decision with input as {"source": anonymous, "request": req("GET", "/products/sku-1")}
	d.allow
	d.operation == "getProduct"
}

test_anonymous_cannot_checkout if {
	d := data.warden.decision with input as {"source": anonymous, "request": req("POST", "/checkout")}
	not d.allow
}

test_customer_checks_out if {
	d := data.warden.decision with input as {"source": customer, "request": req("POST", "/checkout")}
	d.allow
}

test_unverified_email_cannot_checkout if {
	c := json.patch(customer, [{"op": "replace", "path": "/claims/email_verified", "value": false}])
	d := data.warden.decision with input as {"source": c, "request": req("POST", "/checkout")}
	not d.allow
	d.reasons == ["checkout requires a verified email address"]
}

test_probe_allowed if {
	d := data.warden.decision with input as {"source": anonymous, "request": req("GET", "/healthz")}
	d.allow
}

test_unknown_path_denied if {
	d := data.warden.decision with input as {"source": customer, "request": req("GET", "/admin")}
	not d.allow
}

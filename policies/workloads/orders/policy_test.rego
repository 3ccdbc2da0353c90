package warden.workload_test

import rego.v1

storefront := {"principal": "spiffe://cluster.local/ns/shop/sa/storefront", "authn": "mtls", "address": "10.0.0.7", "claims": {}}

invoicer := {"principal": "spiffe://cluster.local/ns/billing/sa/invoicer", "authn": "mtls", "address": "10.0.0.8", "claims": {}}

admin(amr) := {"principal": "alice", "authn": "jwt", "address": "10.0.0.9", "claims": {"sub": "alice", "role": "admin", "amr": amr}}

req(method, path) := {"method": method, "path": path, "segments": array.slice(split(path, "/"), 1, count(split(path, "/"))), "query": {}, "headers": {}}

test_storefront_reads_an_order if {
	d := data.warden.decision with input as {"source": storefront, "request": req("GET", "/orders/42")}
	d.allow
	d.operation == "getOrder"
}

test_export_matches_before_template if {
	d := data.warden.decision with input as {"source": invoicer, "request": req("GET", "/orders/export")}
	d.allow
	d.operation == "exportOrders"
}

test_storefront_cannot_export if {
	d := data.warden.decision with input as {"source": storefront, "request": req("GET", "/orders/export")}
	not d.allow
	d.operation == "exportOrders"
}

test_admin_delete_needs_mfa if {
	d := data.warden.decision with input as {"source": admin(["pwd"]), "request": req("DELETE", "/orders/42")}
	not d.allow
}

test_admin_with_mfa_deletes if {
	d := data.warden.decision with input as {"source": admin(["pwd", "mfa"]), "request": req("DELETE", "/orders/42")}
	d.allow
}

test_storefront_cannot_delete if {
	d := data.warden.decision with input as {"source": storefront, "request": req("DELETE", "/orders/42")}
	not d.allow
}

test_trailing_slash_matches_nothing if {
	d := data.warden.decision with input as {"source": storefront, "request": req("GET", "/orders/42/")}
	not d.allow
	not d.operation
}

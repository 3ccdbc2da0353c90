package warden.workload_test

import rego.v1

agent(scope) := {"principal": "support-agent", "authn": "jwt", "address": "10.1.0.5", "claims": {"sub": "support-agent", "scope": scope}}

dba := {"principal": "spiffe://cluster.local/ns/platform/sa/dba-bot", "authn": "mtls", "address": "10.1.0.9", "claims": {}}

call(tool, args) := {
	"request": {"method": "POST", "path": "/mcp", "segments": ["mcp"], "query": {}, "headers": {}},
	"mcp": {"method": "tools/call", "tool": tool, "arguments": args},
}

decide(source, tool, args) := d if {
	d := data.warden.decision with input as object.union(call(tool, args), {"source": source})
}

test_reader_gets_an_order if decide(agent("tools:read"), "get_order", {"id": "42"}).allow

test_reader_cannot_refund if not decide(agent("tools:read"), "refund_order", {"id": "42", "amount": 10}).allow

test_writer_refunds_small_amounts if decide(agent("tools:read tools:write"), "refund_order", {"id": "42", "amount": 10}).allow

test_writer_cannot_refund_large_amounts if not decide(agent("tools:read tools:write"), "refund_order", {"id": "42", "amount": 5000}).allow

# null, false and true sort below numbers: only a number is an amount.
test_writer_cannot_refund_without_a_numeric_amount if {
	every amount in [null, false, true, "10", [10], {"value": 10}] {
		not decide(agent("tools:read tools:write"), "refund_order", {"id": "42", "amount": amount}).allow
	}
	not decide(agent("tools:read tools:write"), "refund_order", {"id": "42"}).allow
}

test_writer_cannot_drop_tables if {
	d := decide(agent("tools:read tools:write"), "drop_table", {"table": "orders"})
	not d.allow
	d.rpc_error.code == -32003
}

test_dba_bot_drops_tables if decide(dba, "drop_table", {"table": "orders"}).allow

test_select_query_allowed if decide(agent("tools:read"), "query", {"sql": "SELECT * FROM orders"}).allow

test_delete_query_denied if not decide(agent("tools:read"), "query", {"sql": "DELETE FROM orders"}).allow

test_unknown_tool_denied if not decide(agent("tools:read tools:write"), "rm_rf", {}).allow

test_reader_sees_only_read_tools if {
	v := data.warden.visible_tools with input as object.union(call("x", {}), {"source": agent("tools:read")})
	v == {"get_order", "search_orders", "query"}
}

test_session_methods_for_agents if {
	d := data.warden.decision with input as {
		"source": agent("tools:read"),
		"request": {"method": "POST", "path": "/mcp", "segments": ["mcp"], "query": {}, "headers": {}},
		"mcp": {"method": "initialize"},
	}
	d.allow
}

test_anonymous_cannot_initialize if {
	d := data.warden.decision with input as {
		"source": {"principal": "anonymous", "authn": "none", "address": "10.1.0.5", "claims": {}},
		"request": {"method": "POST", "path": "/mcp", "segments": ["mcp"], "query": {}, "headers": {}},
		"mcp": {"method": "initialize"},
	}
	not d.allow
}

# Argument-level rules for the ops MCP server's tools.
package warden.workload

import data.warden.lib.sql
import rego.v1

deny contains "query: only a single read-only SELECT statement is allowed" if {
	input.mcp.method == "tools/call"
	input.mcp.tool == "query"
	not sql.read_only(input.mcp.arguments.sql)
}

refund_limit := 500

deny contains concat("", ["refund_order: refunds above ", format_int(refund_limit, 10), " need a person, not an agent"]) if {
	refund
	input.mcp.arguments.amount > refund_limit
}

# Rego orders values of different types (null < booleans < numbers < strings), so a bare
# `amount <= refund_limit` would let `null` or `true` through: an amount must be a number.
deny contains "refund_order: the amount must be a number" if {
	refund
	not numeric_amount
}

numeric_amount if is_number(input.mcp.arguments.amount)

refund if {
	input.mcp.method == "tools/call"
	input.mcp.tool == "refund_order"
}

# Denied MCP calls come back as a JSON-RPC error the agent can read.
denial := {"rpc_error": {"code": -32003, "message": "Forbidden by policy"}} if input.mcp

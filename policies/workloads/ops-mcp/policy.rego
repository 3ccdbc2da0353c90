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
	input.mcp.method == "tools/call"
	input.mcp.tool == "refund_order"
	not input.mcp.arguments.amount <= refund_limit
}

# Denied MCP calls come back as a JSON-RPC error the agent can read.
denial := {"rpc_error": {"code": -32003, "message": "Forbidden by policy"}} if input.mcp

# Warden's entrypoints: the names proxy plugins and stock OPA evaluate.
package warden

import rego.v1

# The decision for one call: {"allow": bool, "reasons": [string], "operation"?, "status"?, "headers"?, "rpc_error"?}.
decision := data.warden.core.decision

# MCP tools the caller may be offered in tools/list.
visible_tools := data.warden.core.visible_tools

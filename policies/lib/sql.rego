# Deciding whether a SQL statement only reads. Deliberately strict: one statement, starting with
# SELECT (or WITH … SELECT), with no data-modifying keyword anywhere. Anything else is not read-only.
package warden.lib.sql

import rego.v1

modifying := `(?i)\b(insert|update|delete|merge|drop|alter|create|truncate|grant|revoke|copy|call|do|vacuum|lock|set|reset|into)\b`

read_only(stmt) if {
	is_string(stmt)
	s := trim_space(stmt)
	regex.match(`(?is)^(select|with)\b`, s)
	not regex.match(modifying, s)
	not contains(trim_right(s, "; \n\t"), ";")
}

package warden.lib.sql_test

import data.warden.lib.sql
import rego.v1

test_select_is_read_only if sql.read_only("SELECT id, total FROM orders WHERE id = 42")

test_cte_is_read_only if sql.read_only("with t as (select 1) select * from t;")

test_delete_is_not if not sql.read_only("DELETE FROM orders")

test_stacked_statement_is_not if not sql.read_only("SELECT 1; DROP TABLE orders")

test_select_into_is_not if not sql.read_only("SELECT * INTO backup FROM orders")

test_non_string_is_not if not sql.read_only(42)

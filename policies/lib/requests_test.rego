package warden.lib.requests_test

import data.warden.lib.requests
import rego.v1

test_post_is_write if requests.is_write with input as {"request": {"method": "POST"}}

test_get_is_not_write if not requests.is_write with input as {"request": {"method": "GET"}}

test_probe if requests.is_probe with input as {"request": {"method": "GET", "path": "/healthz"}}

test_mfa_from_amr if requests.mfa with input as {"source": {"claims": {"amr": ["pwd", "mfa"]}}}

package warden.lib.requests_test

import data.warden.lib.requests
import rego.v1

test_post_is_write if requests.is_write with input as {"request": {"method": "POST"}}

test_get_is_not_write if not requests.is_write with input as {"request": {"method": "GET"}}

test_probe if requests.is_probe with input as {"request": {"method": "GET", "path": "/healthz"}}

test_mfa_from_amr if requests.mfa with input as {"source": {"claims": {"amr": ["pwd", "mfa"]}}}

test_unread_body_of_another_type if requests.unread_body with input as {"request": {"method": "POST", "headers": {"content-type": "text/plain", "content-length": "15"}}}

test_unread_chunked_body if requests.unread_body with input as {"request": {"method": "POST", "headers": {"transfer-encoding": "chunked"}}}

test_read_body_is_not_unread if not requests.unread_body with input as {"request": {"method": "POST", "headers": {"content-length": "15"}, "body": {"amount": 5}}}

test_empty_body_is_not_unread if not requests.unread_body with input as {"request": {"method": "POST", "headers": {"content-length": "0"}}}

test_no_body_is_not_unread if not requests.unread_body with input as {"request": {"method": "GET", "headers": {}}}

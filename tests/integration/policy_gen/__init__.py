"""Code generated from policy_test.rpc, under gen/ (regenerate: see test_policies_loopback.py)."""

"""The SDK local-mode test's engine, image and scenario runner (tests/binary/test_sdk_local.py)."""

"""What the test suites share: an emulator process and free ports, polling, botocore output shapes, SSE, call counts."""

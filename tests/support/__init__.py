"""Plain helpers shared by the test suites; their fixtures live in the conftest.py files and wrap these."""

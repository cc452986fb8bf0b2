"""Helpers shared by the tests: databases, brokers, case factories."""

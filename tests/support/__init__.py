"""Test support: servers, processes, an S3 server, an asset host, a fake renderer.

Imported by the tests and the bench (never the other way round).
"""

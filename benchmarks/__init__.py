"""Benchmarks for flask-vault: ``python -m benchmarks`` (``make bench``). See README.md.

Kept free of imports so that ``python -m benchmarks.apps bare`` (the process-start
baseline) pays for nothing but Flask.
"""

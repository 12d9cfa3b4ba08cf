"""Benchmarks of semreg (and of the CNCF reference registry for comparison); run by ``make bench``.

Benchmarks print figures; they are not tests. Every request goes to 127.0.0.1, every figure is
bounded in time and request count, and every server a benchmark starts is stopped by it.
"""

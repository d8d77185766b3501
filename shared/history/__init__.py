"""Probe history in the state store: record.py writes each round (under the store lease), view.py reads it.

Full resolution for 24 h, hourly aggregates for 30 days; objects.py says what is stored where.
"""

"""Accounting: turn a snapshot's facts into the figures tools print. Pure functions."""

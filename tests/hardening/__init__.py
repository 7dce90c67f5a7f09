"""Hardening: fuzzing, faults, load and a security sweep; each test records its figure (scripts/reliability.py)."""

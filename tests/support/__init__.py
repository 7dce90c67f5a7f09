"""The tools every test folder and bench/ share: a clean environment, the real CLI, a live `orchestrate`,
project writers, hand-edited artifacts, measured subprocesses and fuzz inputs.

bench/ imports from here (its scripts drive the same projects and servers the tests do); nothing here
imports bench/ or a test folder, and no test folder imports another's modules.
"""

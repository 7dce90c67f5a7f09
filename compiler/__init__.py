"""Build-time compiler: load -> validate -> resolve -> emit."""

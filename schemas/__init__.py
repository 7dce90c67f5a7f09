"""The JSON Schemas (Draft 2020-12), shipped inside the wheel; `runtime.about.SCHEMA_DIR` finds them."""

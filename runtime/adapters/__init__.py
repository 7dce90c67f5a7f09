"""Built-in adapters; each module imports its SDK only inside `activate()`."""

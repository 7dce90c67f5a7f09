"""Cold-start runtime: standard library and bottle only; never imports the compiler."""

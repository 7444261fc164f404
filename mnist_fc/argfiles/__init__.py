"""Scripts that print one runner flag line per run, for batch runs."""

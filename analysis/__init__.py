"""Reading experiment results back, metrics, tables and figures."""

"""Training data from an author's own text: instruction and preference datasets (no Dagster here)."""

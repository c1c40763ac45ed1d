"""Model registry: resolves the embedding model and the base LLM, offline by default."""

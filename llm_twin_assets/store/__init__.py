"""The warehouse and vector store: PostgreSQL + pgvector (embedded by default)."""

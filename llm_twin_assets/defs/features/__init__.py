"""Features: cleaned_documents, chunks and chunk_embeddings, per author."""

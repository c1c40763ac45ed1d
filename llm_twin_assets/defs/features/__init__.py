"""Features: cleaned_documents, chunks and chunk_embeddings (with the chunks' retrieval units), per author."""

"""Ingestion: an author's links crawled into raw_documents."""

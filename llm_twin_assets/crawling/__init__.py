"""Crawlers: from an author's links to raw documents. Plain Python, no Dagster import."""

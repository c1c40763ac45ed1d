"""Feature pipeline libraries: cleaning, chunking, encoding. No Dagster import."""

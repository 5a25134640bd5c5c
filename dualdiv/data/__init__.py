"""Data layer: readers of raw files (one registry), the ingest assembly, tiles and sample files."""

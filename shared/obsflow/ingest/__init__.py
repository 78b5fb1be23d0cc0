"""The ingest path: from an S3 notification to counted frames and ready candidates."""

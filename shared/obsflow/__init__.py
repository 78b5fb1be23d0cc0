"""obsflow: serverless science data processing for observatory data centers."""

__version__ = "0.1.0"

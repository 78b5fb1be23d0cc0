"""The read side: what operators, the CLI and the monitor ask of the records, joined the way people ask.

``ports.py`` says what each read model needs (per concern); ``catalogue.py``, ``provenance.py`` and
``queries.py`` are the read models, over those ports alone; ``store.py`` is the one adapter, on the
DynamoDB tables. Unit tests run the read models on an in-memory fake.
"""

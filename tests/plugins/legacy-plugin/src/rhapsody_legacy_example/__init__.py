"""Backends written against rhapsody-py 0.6's ``BaseBackend``, unchanged."""

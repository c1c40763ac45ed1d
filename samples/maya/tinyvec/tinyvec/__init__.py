"""tinyvec: exact nearest-neighbour search for small collections."""

from tinyvec.index import Index

__all__ = ["Index"]

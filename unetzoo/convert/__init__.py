"""Loaders for checkpoints of other implementations."""

from .ljh import LJH_ARCHS, ljh_to_unetzoo, load_ljh

__all__ = ["LJH_ARCHS", "ljh_to_unetzoo", "load_ljh"]

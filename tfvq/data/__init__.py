"""tfvq.data."""

__all__ = []

"""tfvq.utils."""

__all__ = []

"""tfvq.models."""

__all__ = []

"""tfvq.layers."""

__all__ = []

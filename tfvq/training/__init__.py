"""tfvq.training."""

__all__ = []

"""tfvq.tuning."""

__all__ = []

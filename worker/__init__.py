"""closeloop: event-driven case routing for city hotlines."""

__version__ = "0.1.0"

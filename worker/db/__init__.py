"""Storage: SQLAlchemy 2 typed models, engine and sessions, Alembic migrations."""

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY routing_rules ./routing_rules
COPY schemas ./schemas
RUN pip install . && useradd --system --home /app closeloop
USER closeloop
ENV CLOSELOOP_RULES_DIR=/app/routing_rules CLOSELOOP_LOG_FORMAT=json
EXPOSE 8080
CMD ["closeloop", "api", "--host", "0.0.0.0"]

# syntax=docker/dockerfile:1
# Build stage: wheels of scaler and its dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scaler ./scaler
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Run stage: no build tools, a non-root user, works with a read-only root filesystem
# (nothing is written at run time: no bytecode, logs to stdout, metrics in memory).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --no-create-home scaler
USER 10001
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=2)"]
# scaler handles SIGTERM itself: it stops receiving, finishes or releases its messages, exits 0
STOPSIGNAL SIGTERM
ENTRYPOINT ["scaler"]
CMD ["run"]

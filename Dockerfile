# syntax=docker/dockerfile:1
# Build stage: a wheel of scaler and its dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scaler ./scaler
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

# Run stage: no build tools, a non-root user, works with a read-only root filesystem.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels scaler \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --no-create-home scaler
USER 10001
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=2)" || exit 1
ENTRYPOINT ["scaler"]
CMD ["run"]

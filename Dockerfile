# Kinguard image: one image for web (gunicorn), face worker, default worker and beat.
# Multi-stage: wheels are built in "build"; the runtime stage has no compilers and runs as a
# non-root user. Test tooling (pytest, playwright, ruff, ...) is not installed.
# Runtime requirements only: once the requirements split lands, REQUIREMENTS=requirements.txt
# holds runtime pins only (see README "Production").
FROM python:3.11-slim-bookworm AS build
ARG REQUIREMENTS=requirements.txt
WORKDIR /build
COPY requirements*.txt ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && grep -vE '^(pytest|pytest-|factory_boy|time-machine|ruff|bandit|pip-audit|playwright)' "$REQUIREMENTS" > runtime.txt \
 && /opt/venv/bin/pip install --no-cache-dir -r runtime.txt \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps -r requirements-nodeps.txt

FROM python:3.11-slim-bookworm AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 libopenblas0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system kinguard && useradd --system --gid kinguard --home /app kinguard \
 && mkdir -p /var/lib/kinguard && chown kinguard:kinguard /var/lib/kinguard
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=kinguard:kinguard . /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    KINGUARD_VAR_DIR=/var/lib/kinguard \
    DJANGO_STATIC_ROOT=/var/lib/kinguard/static
USER kinguard
EXPOSE 8000
ENTRYPOINT ["python"]
CMD ["-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi"]

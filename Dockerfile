# brokerops image: one image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim
# Bytecode is compiled once at build time (UV_COMPILE_BYTECODE, compileall below) and only read at
# run time: without it every command recompiles Django and Celery, about 1 s of its start-up.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 PATH="/opt/venv/bin:$PATH"
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN python -m compileall -q /app
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "brokerops.wsgi", "-c", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "3"]

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY routing routing
COPY transit transit
COPY api api
COPY driver_app driver_app
COPY data data
RUN pip install --no-cache-dir . && cd / && python -m routing.lns
ENV OKUMA_DATA_DIR=/app/data/okuma
EXPOSE 8000
CMD ["okuma", "serve"]

# dermsev dashboard: docker build -t dermsev . && docker run -p 127.0.0.1:8501:8501 -v dermsev:/data dermsev
# It listens beyond localhost inside the container, so sign-in is required: add the first account
# with `docker run --rm -it -v dermsev:/data dermsev dermsev users add admin --role admin`.
# With PostgreSQL and a reverse proxy: compose.yaml and README (Deployment).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    NO_ALBUMENTATIONS_UPDATE=1 \
    DERMSEV_DATA=/data \
    DERMSEV_READY_FILE=/tmp/dermsev.ready \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none

RUN apt-get update && apt-get install -y --no-install-recommends curl libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The project pins torch 2.14.1 / torchvision 0.29.1. Pass --build-arg TORCH_INDEX=<a CPU-only
# wheel index> to get CPU wheels (a much smaller image); by default pip's index is used.
ARG TORCH_INDEX=""
RUN pip install torch==2.14.1 torchvision==0.29.1 ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
COPY pyproject.toml README.md ./
COPY model ./model
COPY dashboard ./dashboard
COPY .streamlit ./.streamlit
RUN pip install .

RUN useradd --create-home dermsev && mkdir -p /data && chown dermsev /data
USER dermsev
VOLUME ["/data"]
EXPOSE 8501
# Healthy only once the model is loaded: dashboard.serve writes the ready file after loading
# it and before the server starts (and removes it on exit).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD test -f /tmp/dermsev.ready && curl --fail http://localhost:8501/_stcore/health || exit 1
CMD ["python", "-m", "dashboard.serve", "--server.address=0.0.0.0", "--server.port=8501"]

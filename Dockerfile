# twinledger node image. Build: docker build -t twinledger-node .   Run: see docker-compose.yml
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements-node.lock ./
RUN pip install --no-cache-dir --prefix=/install -r requirements-node.lock
COPY pyproject.toml README.md ./
COPY sdk ./sdk
COPY node ./node
RUN pip install --no-cache-dir --prefix=/install --no-deps .

FROM python:3.11-slim
# An unprivileged user owns nothing but the data volume.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin twinledger \
    && mkdir -p /data /deployments && chown twinledger:twinledger /data /deployments
COPY --from=build /install /usr/local
COPY contracts/artifacts /opt/twinledger/artifacts
ENV TWINLEDGER_ARTIFACTS=/opt/twinledger/artifacts \
    TWINLEDGER_DATA_DIR=/data \
    TWINLEDGER_HOST=0.0.0.0 \
    TWINLEDGER_PORT=8700 \
    PYTHONUNBUFFERED=1
USER twinledger
VOLUME ["/data"]
EXPOSE 8700
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8700/healthz', timeout=2)"]
ENTRYPOINT ["twinledger"]
CMD ["node", "up"]

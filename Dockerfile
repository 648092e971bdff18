# canaryd: slim Python, non-root, exec-form entrypoint so SIGTERM reaches the daemon.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY analyzer ./analyzer
COPY judges ./judges
RUN python -m pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/canaryd --create-home canaryd
COPY --from=build /install /usr/local
COPY config /etc/canaryd/config
ENV CANARYD_LISTEN=0.0.0.0:8080 \
    CANARYD_DATABASE_URL=sqlite:////var/lib/canaryd/canaryd.db \
    CANARYD_CONFIG_DIR=/etc/canaryd/config \
    PYTHONUNBUFFERED=1
USER canaryd
WORKDIR /var/lib/canaryd
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["canaryd"]
CMD ["serve"]

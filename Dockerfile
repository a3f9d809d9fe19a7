# kretry in a slim image, run as an unprivileged user. An app's image builds on it (docs/deploying.md):
#   FROM kretry:0.1.0
#   COPY app.py /app/
#   CMD ["run", "app:retrier", "--http-port", "8010", "--http-host", "0.0.0.0"]

FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kretry ./kretry
RUN pip wheel --no-cache-dir --no-deps --quiet -w /dist .

FROM python:3.12-slim
# confluent-kafka's manylinux wheels carry librdkafka with SSL and SASL built in: no compiler, no apt packages.
COPY --from=wheel /dist /dist
RUN python -m venv /opt/kretry \
    && /opt/kretry/bin/pip install --no-cache-dir --disable-pip-version-check /dist/*.whl \
    && rm -rf /dist
ENV PATH=/opt/kretry/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001
# exec form: kretry is PID 1 and gets the orchestrator's SIGTERM itself, which starts its graceful stop.
ENTRYPOINT ["kretry"]
CMD ["--help"]

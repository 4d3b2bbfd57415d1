# The operator image: `ballast operator run` as a non-root user, without build tools.
# Built by `make kind-demo` where Docker exists; these development machines have no Docker engine.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/ballast \
 && /opt/ballast/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/ballast/bin/pip install --no-cache-dir .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="ballast" \
      org.opencontainers.image.description="Release guardrails for Kubernetes"
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin ballast
COPY --from=build /opt/ballast /opt/ballast
ENV PATH=/opt/ballast/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
# 8080 metrics, 8081 /healthz and /readyz, 9443 webhooks.
EXPOSE 8080 8081 9443
ENTRYPOINT ["ballast", "operator", "run"]
CMD ["--log-format", "json"]

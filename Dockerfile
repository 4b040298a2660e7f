# syntax=docker/dockerfile:1
# micboard-exporter container image.
#
#   docker build -t micboard-exporter:$(python3 -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])') .
#   docker run --rm -p 9798:9798 -v $PWD/config.yaml:/etc/micboard-exporter/config.yaml:ro micboard-exporter:<version>
#
# Two stages: `build` turns the source into a wheel and installs it with its dependencies into a virtual
# environment; the final stage gets only that environment on a clean Python base (no pip in the venv, no
# compilers, no source tree). tests/deploy/test_container_image.py runs the build stage's RUN steps in a
# scratch directory, so keep them plain shell over $SRC, $WHEELS and $VENV.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    SRC=/src \
    WHEELS=/wheels \
    VENV=/opt/micboard-exporter
WORKDIR /src
COPY pyproject.toml README.md ./
COPY micboard_exporter/ micboard_exporter/
RUN python -m pip wheel --no-deps --wheel-dir "$WHEELS" "$SRC"
# --without-pip: the outer pip installs into the venv, so the runtime image carries no installer.
RUN python -m venv --without-pip "$VENV" \
    && python -m pip --python "$VENV/bin/python" install "$WHEELS"/micboard_exporter-*.whl
# Fail the build, not the first pod, if the entry point or a plugin can't load.
RUN "$VENV/bin/micboard-exporter" --version && "$VENV/bin/micboard-exporter" plugins

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="micboard-exporter" \
      org.opencontainers.image.description="Prometheus exporter for wireless microphone fleets (Shure, Sennheiser)" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric UID/GID: Kubernetes' runAsNonRoot can only verify a numeric USER, and the Helm chart's
# securityContext uses the same 10001.
RUN groupadd --system --gid 10001 micboard \
    && useradd --system --uid 10001 --gid micboard --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin micboard
COPY --from=build /opt/micboard-exporter /opt/micboard-exporter
# Bytecode was compiled at install time; the root filesystem may be read-only at run time.
ENV PATH=/opt/micboard-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9798
ENTRYPOINT ["micboard-exporter"]
CMD ["run", "--config", "/etc/micboard-exporter/config.yaml"]

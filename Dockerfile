# syntax=docker/dockerfile:1
# authgate container image.
#   docker build -t authgate .
#   docker run -p 8080:8080 authgate            # the demo: curl -u demo:demo http://127.0.0.1:8080/echo/
#   docker run -p 8080:8080 -v $PWD/my-config:/app/config:ro -v authgate-data:/app/data authgate \
#     node bin/authgate.js start                # your own config, without the demo upstream
# The config inside the image is the demo one; its public listener binds $AUTHGATE_LISTEN_HOST,
# which the image sets to 0.0.0.0 (reachable through -p); the admin listener stays on loopback.
# Your own config can use ${AUTHGATE_LISTEN_HOST:-127.0.0.1} the same way.
# scripts/image-check.sh (run by .ci/run) rebuilds this runtime layout and runs the demo curl.

# ---- build: compile TypeScript and the native better-sqlite3 binding ----
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# Dependencies first (cached while only sources change). Scripts are skipped here because
# `prepare` builds from sources not copied yet; better-sqlite3's own install script is run next.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ----
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    AUTHGATE_CONFIG=/app/config/authgate.yaml \
    AUTHGATE_LISTEN_HOST=0.0.0.0
WORKDIR /app

# Application files stay owned by root (read-only for the service user); only data/ is writable.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config ./config
COPY plugins ./plugins
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]

USER node
EXPOSE 8080 9090

# No curl in the slim image: node itself asks the admin listener's /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.AUTHGATE_ADMIN_PORT || '9090') + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# The demo config's routes point at the demo upstream on 127.0.0.1:8081, started alongside.
CMD ["node", "bin/authgate.js", "start", "--demo-upstream", "127.0.0.1:8081"]

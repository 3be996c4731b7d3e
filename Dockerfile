# Node 24 is the current LTS (Node 20 reached its end of life in April 2026). The suite is tested on Node 20 (README, Docker).
FROM node:24-bookworm-slim AS dependencies
WORKDIR /app
# better-sqlite3 compiles from source when no prebuilt binary matches the platform.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY mappings ./mappings
# Numeric, so Kubernetes' runAsNonRoot can verify it (the image's `node` user is 1000:1000).
USER 1000:1000
# 8080: serve (webhook, /healthz, /readyz, /metrics); 9464: acks --metrics-port, alias of acks.listen (/metrics, /healthz, /readyz).
EXPOSE 8080 9464
ENTRYPOINT ["node", "bin/rossum-sftp-bridge"]
CMD ["serve", "--config", "/config/bridge.yaml"]

# Node 24 comes from the `node` devDependency: node_modules/.bin goes first on PATH.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
SHELL := /bin/bash

.PHONY: help install build dev test typecheck bench soak soak-growth up down images image-check k8s services tools

help:
	@echo "make dev     run migrations, the API and a worker against local Postgres and Redis"
	@echo "make build   compile services/ to dist/, which npm start:api / start:worker / migrate run"
	@echo "make test    install from the lockfile and run every test"
	@echo "make bench   run the benchmark and print its figures"
	@echo "make soak    20 minutes at a fixed rate: RSS and tasks table every minute, flat or not (SOAK_ARGS=\"--duration 5m\")"
	@echo "make soak-growth  purge 1,000,000 finished tasks under load, then a steady run with short retention"
	@echo "make up      start the compose stack (needs Docker)    make down  stop it"
	@echo "make images  build both images (Docker, else podman)   make k8s   render every overlay"
	@echo "make image-check  build both images with podman and run them against local Postgres and Redis"

node_modules/.package-lock.json: package-lock.json package.json
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: node_modules/.package-lock.json

services:
	@scripts/ensure-services.sh

tools:
	@scripts/ensure-test-tools.sh

typecheck: install
	npm run typecheck

test: install services tools
	npm test

build: install
	npm run build

# Development runs the .ts sources (Node strips the types): an edit needs a restart, not a
# build. The images, the npm start scripts and the benchmark run the built dist/.
dev: install
	@node scripts/check-services.ts
	node services/core/db/migrate-command.ts
	npm run dev

bench: install services
	npm run bench

soak: install services
	node bench/soak.ts $(SOAK_ARGS)
soak-growth: install services
	node bench/growth-drill.ts

up:
	docker compose up -d --build
	@echo "API http://localhost:3000 (docs /docs)  Prometheus http://localhost:9090  Grafana http://localhost:3001"

down:
	docker compose down

# The tags docker-compose.yml and k8s/overlays/dev use. Docker when an engine answers, else
# podman on a local Node 24 base; CONTAINER_ENGINE=docker|podman chooses.
images:
	@scripts/images.sh

# What CI runs after make test: both images built and run for real (podman).
image-check: install services
	@scripts/image-check.sh

k8s:
	@for overlay in k8s/overlays/*/; do echo "# $$overlay"; kubectl kustomize "$$overlay" >/dev/null || exit 1; echo "ok"; done

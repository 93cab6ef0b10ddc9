#!/usr/bin/env bash
# Starts the local RabbitMQ and PostgreSQL if they are not running (sourced by the other scripts).
# Usage: ensure_rabbitmq; ensure_postgres; ensure_chromium; ensure_pgbouncer

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_rabbitmq() {
  if rabbitmqctl ping >/dev/null 2>&1; then return 0; fi
  echo "starting RabbitMQ (rabbitmq-server -detached)"
  rabbitmq-server -detached
  for _ in $(seq 1 120); do port_open 5672 && break; sleep 0.5; done
  rabbitmqctl await_startup >/dev/null
}

ensure_postgres() {
  if port_open 5432; then return 0; fi
  echo "starting PostgreSQL (pg_ctlcluster)"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 120); do port_open 5432 && return 0; sleep 0.5; done
  echo "PostgreSQL did not open port 5432" >&2
  return 1
}

# The page's browser test drives Debian's Chromium through chromedriver.
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "Chromium is missing for the page's browser test: sudo apt-get install chromium chromium-driver" >&2
    return 1
  fi
  echo "installing Chromium for the page's browser test (apt-get install chromium chromium-driver)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}

# tests/pgbouncer.rs starts its own PgBouncer (scripts/pgbouncer) in front of PostgreSQL.
ensure_pgbouncer() {
  if command -v pgbouncer >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "PgBouncer is missing for tests/pgbouncer.rs: sudo apt-get install pgbouncer" >&2
    return 1
  fi
  echo "installing PgBouncer for tests/pgbouncer.rs (apt-get install pgbouncer)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
}

# Sourced by scripts/serve, scripts/test and .ci/run: makes sure the C
# libraries the build needs are there, and that PostgreSQL (127.0.0.1:5432,
# user postgres) and Redis (127.0.0.1:6379) answer, installing and starting
# them from Debian's packages when needed. Exports ORGSYNC_TEST_DATABASE_URL
# and ORGSYNC_TEST_REDIS_URL for the tests.

log() { echo "[services] $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  log "installing $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# What building orgsync needs beyond Rust: xmlsec, libxml2 and OpenSSL for
# SAML signatures, and libclang for the bindings to them.
build_deps_present() {
  pkg-config --exists xmlsec1-openssl libxml-2.0 openssl 2>/dev/null \
    && ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1
}

ensure_build_deps() {
  build_deps_present && return 0
  install_packages libxmlsec1-dev libxmlsec1-openssl libxml2-dev libssl-dev pkg-config libclang-dev
  build_deps_present || { log "xmlsec, libxml2, OpenSSL or libclang is still missing"; return 1; }
}

pg_answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    install_packages postgresql postgresql-client
  fi
  if ! pg_answers; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 60); do pg_answers && break; sleep 0.5; done
  fi
  pg_answers || { log "PostgreSQL does not answer on 127.0.0.1:5432"; return 1; }
  if [ -z "${ORGSYNC_TEST_DATABASE_URL:-}" ]; then
    if psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1 </dev/null; then
      export ORGSYNC_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    else
      # A fresh Debian install asks for a password over TCP: give the test user one.
      log "setting a password for the postgres user (TCP auth is not trust here)"
      as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
      export ORGSYNC_TEST_DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
    fi
  fi
}

redis_answers() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || install_packages redis-server
  if ! redis_answers; then
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/orgsync-ci.log
    for _ in $(seq 1 40); do redis_answers && break; sleep 0.25; done
  fi
  redis_answers || { log "Redis does not answer on 127.0.0.1:6379"; return 1; }
  export ORGSYNC_TEST_REDIS_URL="${ORGSYNC_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
}

ensure_services() {
  ensure_postgres
  ensure_redis
  log "PostgreSQL and Redis are up"
}

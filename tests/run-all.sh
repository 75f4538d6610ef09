#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with the Rust toolchain:
# installs what the tests need (Apache ZooKeeper + zkCli.sh for the differential
# and CLI tests, Apache Curator and a JDK for the Curator check, kazoo and
# pytest), then runs lint, unit, wire and compat tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

# What the compatibility tests import (kazoo's own suite needs the last three).
PY_DEPS='import kazoo, pytest, jks, OpenSSL, objgraph'
PY_HEADERS='import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'

install_deps() {
  local need_apt=()
  command -v python3 >/dev/null || need_apt+=(python3)
  [ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
  # the Apache peer of tests/zab_wire_interop.rs logs through slf4j-simple
  [ -f /usr/share/java/slf4j-simple.jar ] || need_apt+=(libslf4j-java)
  # A JDK (not only a JRE): the Curator check is a single-file Java source
  # program, which `java` compiles in memory.
  command -v javac >/dev/null || need_apt+=(default-jdk-headless)
  [ -f /usr/share/java/curator-recipes.jar ] || need_apt+=(libcurator-recipes-java)
  command -v promtool >/dev/null || need_apt+=(prometheus)
  # test_tls.py makes its certificates with the openssl CLI (stores with keytool)
  command -v openssl >/dev/null || need_apt+=(openssl)
  # Without kazoo/pytest, they go into a venv (Debian's Python refuses a
  # system-wide pip install), which needs pip and venv support.
  if ! python3 -c "$PY_DEPS" 2>/dev/null; then
    python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv python3-pip)
    # pyjks's twofish dependency is built from source: a C compiler and Python's headers.
    command -v gcc >/dev/null || need_apt+=(gcc)
    python3 -c "$PY_HEADERS" 2>/dev/null || need_apt+=(python3-dev)
  fi
  if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_apt[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need_apt[@]}"
  fi
  PYTHON=python3
  if ! python3 -c "$PY_DEPS" 2>/dev/null; then
    log "installing Python packages into target/compat-venv"
    python3 -m venv target/compat-venv
    PYTHON="$PWD/target/compat-venv/bin/python"
    "$PYTHON" -m pip install -q -r tests/compat/requirements.txt
  fi
}

install_deps

log "format and lint"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings

log "unit and wire tests (cargo test)"
cargo test --release --workspace -- --test-threads=2

log "real-client compatibility tests (kazoo, zkCli.sh, differential vs Apache ZooKeeper)"
export FERROKEEPER_BIN="$PWD/target/release/ferrokeeper"
"$PYTHON" -m pytest -q tests/compat

log "kazoo, zkCli.sh and Curator against a 3-server Ferrokeeper ensemble (connect string of all three)"
COMPAT_TARGET=ferrokeeper-ensemble "$PYTHON" -m pytest -q \
  tests/compat/test_kazoo_recipes.py tests/compat/test_zkcli.py tests/compat/test_curator.py

log "kazoo's own test suite against a 3-server Ferrokeeper ensemble (its harness, cluster size 3)"
tests/compat/kazoo_suite/run.sh "$PYTHON"

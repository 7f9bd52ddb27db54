#!/usr/bin/env bash
# The demo, on a fresh Debian machine as root: installs what it needs, builds, and shows a guest
# exiting at once while its teardown is queued, paced and accounted by a daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/demo/demo.js

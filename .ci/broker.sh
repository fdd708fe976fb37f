#!/usr/bin/env bash
# The MQTT output's tests (tests/edge/sinks/test_mqtt.py) run against a real broker: Debian's mosquitto. The
# tests start their own on 127.0.0.1 on free ports with generated configs (the system service is not used).
# This installs the package with apt-get where it is missing and we are root; otherwise it says why those
# tests will skip. Never fails the CI run by itself.
set -uo pipefail

found() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }

if found; then
    echo "== mosquitto: $(PATH="$PATH:/usr/sbin" mosquitto -h 2>/dev/null | head -1)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "== mosquitto is not installed and this is not root: the MQTT broker tests skip (apt-get install mosquitto)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "== mosquitto is not installed and there is no apt-get: the MQTT broker tests skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends mosquitto >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y --no-install-recommends mosquitto >/dev/null 2>&1; }
if found; then
    echo "== mosquitto installed: $(PATH="$PATH:/usr/sbin" mosquitto -h 2>/dev/null | head -1)"
else
    echo "== apt-get could not install mosquitto: the MQTT broker tests skip"
fi

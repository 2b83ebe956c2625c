#!/usr/bin/env bash
# network peers (called by .ci/run): nftables (the agent's security-group backend), iproute2 (tc,
# ip netns for the real-packet tests) and ping/nc to send the packets. Idempotent; as root.
set -euo pipefail
missing=$(for p in nftables iproute2 iputils-ping netcat-openbsd; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "${missing// /}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null \
    || { apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null; \
         apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null; }
fi
echo "network peers ready: $(nft --version) tc ip ping nc"

#!/usr/bin/env bash
# network peers (called by .ci/run): nftables (the agent's security-group backend), iproute2 (tc,
# ip netns for the real-packet tests) and ping/nc to send the packets. Idempotent; as root.
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"
apt_install_missing nftables iproute2 iputils-ping netcat-openbsd
echo "network peers ready: $(nft --version) tc ip ping nc"

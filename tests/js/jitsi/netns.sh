#!/usr/bin/env bash
# Runs a command in a network namespace of its own, for browser calls:
# Chromium gathers no ICE candidates on the loopback interface, so the
# namespace gets a veth pair with 10.213.0.1/24 on one end, which lilt's
# bridge offers as its host candidate and Chromium gathers on. Loopback is up
# too (lilt's XMPP and HTTP listen there). LILT_NETNS_ADDRESSES adds more
# addresses to the veth (e.g. "10.213.0.2/24", for a second bridge). Nothing
# in the namespace reaches any other network: all media stays on this machine.
#
#   tests/js/jitsi/netns.sh COMMAND [ARG...]
set -euo pipefail
exec unshare --net -- bash -c '
  set -e
  ip link set lo up
  ip link add lilt-media type veth peer name lilt-peer
  ip addr add 10.213.0.1/24 dev lilt-media
  for address in ${LILT_NETNS_ADDRESSES:-}; do ip addr add "$address" dev lilt-media; done
  ip link set lilt-media up
  ip link set lilt-peer up
  exec "$@"
' netns "$@"

# shellcheck shell=bash
# Sourced by scripts/demo.sh (PATH and rc_admin set; serve runs with --with-agent): an image, a
# network, three servers on the in-process agent's simulated host, then stop one and delete one.

demo_field() {  # demo_field SERVER FIELD: one field of `climc server-show` (empty if it is gone)
  climc server-show "$1" -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2" 2>/dev/null || true
}
demo_wait() {  # demo_wait SERVER STATUS  (STATUS "gone": until it no longer exists)
  local want=$2 got=""
  for _ in $(seq 300); do
    got=$(demo_field "$1" status)
    if [ "$want" = gone ]; then [ -z "$got" ] && return 0; elif [ "$got" = "$want" ]; then return 0; fi
    sleep 0.1
  done
  echo "demo: $1 is ${got:-gone}, not $want, after 30 s (see $LOG)" >&2
  return 1
}

# the in-process agent registers its host a moment after serve starts
for _ in $(seq 100); do
  climc host-list -o json 2>/dev/null | grep -q '"host_status": "online"' && break
  sleep 0.1
done
run climc host-list -c name -c host_status -c cpu_count -c mem_size -c guests

IMG=$(mktemp -d)/demo-tiny.img
if command -v qemu-img >/dev/null 2>&1; then
  qemu-img create -q -f qcow2 "$IMG" 64M
else
  python3 -c 'import sys; open(sys.argv[1], "wb").truncate(1 << 20)' "$IMG"
fi
climc image-show demo-tiny >/dev/null 2>&1 || run climc image-upload demo-tiny "$IMG" --public -c name -c disk_format -c size -c status
rm -f "$IMG"
climc network-show demo-net >/dev/null 2>&1 ||
  run climc network-create default demo-net 10.198.0.10 10.198.0.100 24 --gateway 10.198.0.1 -c name -c guest_ip_start -c guest_ip_end
run climc server-create demo --disk demo-tiny --net demo-net --count 3 --auto-start -c name -c status
for s in demo-1 demo-2 demo-3; do demo_wait "$s" running; done
run climc server-list -c name -c status -c ips -c host -c disk
run climc server-stop demo-1 -c name -c status
demo_wait demo-1 ready
run climc server-delete -f demo-2 -c name -c status
demo_wait demo-2 gone
run climc server-list -c name -c status -c ips -c host

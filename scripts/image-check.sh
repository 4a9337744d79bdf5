#!/usr/bin/env bash
# Checks what the Docker image ships, without a container engine: rebuilds the image's runtime
# layout in a temporary folder — production-only node_modules (npm ci --omit=dev), dist, bin,
# config, plugins, package.json; the app folder read-only for the service user, only data/
# writable — starts the image's command as an unprivileged user with the image's environment
# (AUTHGATE_LISTEN_HOST=0.0.0.0), runs the README's curl, and cleans up. Ports are free ones
# passed through AUTHGATE_LISTEN_PORT / AUTHGATE_ADMIN_PORT. Exit 0 = the image would work.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/authgate-image.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "image-check: FAIL: $*" >&2; [ -f "$work/gateway.log" ] && tail -n 40 "$work/gateway.log" >&2; exit 1; }

echo "image-check: building dist"
(cd "$root" && npx tsc -p tsconfig.build.json)

app="$work/app"
mkdir -p "$app"
cp -R "$root/dist" "$root/bin" "$root/config" "$root/plugins" "$root/package.json" "$root/package-lock.json" "$app/"

echo "image-check: npm ci --omit=dev"
# Scripts are skipped as in the Dockerfile's first npm ci; better-sqlite3's native binding is
# the one already built for this Node in the checkout (the same locked version), instead of
# compiling it again (minutes on a small machine).
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
mkdir -p "$app/node_modules/better-sqlite3/build/Release"
cp "$root/node_modules/better-sqlite3/build/Release/better_sqlite3.node" "$app/node_modules/better-sqlite3/build/Release/"
for dev in tap typescript eslint tsx knip; do
  [ ! -e "$app/node_modules/$dev" ] || fail "dev dependency $dev is in the production node_modules"
done
rm -f "$app/package-lock.json"

# Root owns the app (read-only for the service user); only data/ is the user's.
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p "$app/data"
  chown -R root:root "$app"
  chown nobody:nogroup "$app/data"
  chmod 755 "$work"
  run_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env)
else
  echo "image-check: not root: running as $(id -un), with the app folder made read-only"
  mkdir -p "$app/data"
  chmod -R a-w "$app"
  chmod u+w "$app" "$app/data"
  chmod a-w "$app"
fi

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
port=$(free_port)
admin_port=$(free_port)
demo_port=$(free_port)
# The demo config's routes point at 127.0.0.1:8081; use a free port for the demo upstream.
sed -i "s#http://127.0.0.1:8081#http://127.0.0.1:${demo_port}#" "$app/config/authgate.yaml"

echo "image-check: starting the image's command as an unprivileged user (public :$port, admin :$admin_port)"
(
  cd "$app"
  exec "${run_as[@]}" env PATH="$PATH" HOME="$app/data" NODE_ENV=production \
    AUTHGATE_CONFIG="$app/config/authgate.yaml" AUTHGATE_LISTEN_HOST=0.0.0.0 \
    AUTHGATE_LISTEN_PORT="$port" AUTHGATE_ADMIN_PORT="$admin_port" \
    node bin/authgate.js start --demo-upstream "127.0.0.1:${demo_port}"
) >"$work/gateway.log" 2>&1 &
pid=$!

for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:${admin_port}/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || fail "the gateway exited"
  sleep 0.2
done
curl -fsS "http://127.0.0.1:${admin_port}/healthz" >/dev/null || fail "/healthz did not answer within 30 s"

# The README's curl.
out=$(curl -sS -u demo:demo "http://127.0.0.1:${port}/echo/") || fail "curl failed"
echo "$out" | grep -q '"x-auth-user": *"demo"' || fail "no x-auth-user: demo in: $out"
# The public listener is on every interface (0.0.0.0): another loopback address reaches it …
curl -fsS -o /dev/null -u demo:demo "http://127.0.0.2:${port}/echo/" || fail "the public listener is not on 0.0.0.0"
# … the admin listener is not.
if curl -sS -o /dev/null --max-time 2 "http://127.0.0.2:${admin_port}/healthz" 2>/dev/null; then fail "the admin listener answers on 127.0.0.2"; fi
# Only data/ was written: the generated signing key and the SQLite database are there.
[ -f "$app/data/k1.pem" ] || fail "no generated key in data/"
[ -f "$app/data/authgate.db" ] || fail "no database in data/"
if [ "$(id -u)" -eq 0 ]; then
  [ "$(stat -c %U "$app/data/k1.pem")" = nobody ] || fail "the gateway did not run as the unprivileged user"
fi
echo "image-check: ok (x-auth-user: demo through the production layout)"

#!/usr/bin/env bash
# Packs Tollgate as npm would publish it, then builds and runs each example against that tarball,
# installed the way any user installs it. Needs PostgreSQL on 127.0.0.1:5432 and Redis on
# 127.0.0.1:6379 (as CI has them). Run from anywhere: bash examples/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=${PGUSER:-root}
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
# Each smoke finishes in seconds; a hang must fail the run, not stall CI.
SMOKE_TIMEOUT=120
# The root's devDependencies: none of them may reach a user's node_modules.
DEV_TOOLS=(tap @tapjs eslint neostandard tsx autocannon fast-check)

started=$SECONDS
scratch=$(mktemp -d)
database=
redis_prefix=

step () { echo; echo "== $* ($((SECONDS - started)) s)"; }
fail () { echo "examples/run.sh: $*" >&2; exit 1; }
random_hex () { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
psql_admin () { psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
redis () { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }

cleanup () {
  if [ -n "$database" ]; then psql_admin "drop database if exists \"$database\" with (force)" || echo "could not drop database $database" >&2; fi
  if [ -n "$redis_prefix" ]; then redis --scan --pattern "$redis_prefix:*" | xargs -r -n 100 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT
# Through `exit`, so that an interrupted run cleans up too.
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
step "build and pack tollgate"
# npm pack runs prepack: a clean build.
rm -f examples/tollgate.tgz
tarball=$(npm pack --pack-destination examples --silent | tail -n 1)
mv "examples/$tarball" examples/tollgate.tgz
contents=$(tar -tzf examples/tollgate.tgz)
problems=()
if grep -Eq '^package/(.*/)?(test|bench|\.ci)/' <<<"$contents"; then
  problems+=("has files of test/, bench/ or .ci/: $(grep -E '^package/(.*/)?(test|bench|\.ci)/' <<<"$contents" | head -n 5 | tr '\n' ' ')")
fi
for file in dist/plugins/tollgate.js dist/plugins/tollgate.d.ts dist/plugins/verify.js dist/plugins/verify.d.ts LICENSE; do
  grep -qx "package/$file" <<<"$contents" || problems+=("lacks $file")
done
if [ ${#problems[@]} -gt 0 ]; then
  printf 'the tarball %s\n' "${problems[@]}" >&2
  fail "examples/tollgate.tgz is not fit to publish"
fi
echo "examples/tollgate.tgz: $(wc -l <<<"$contents") files, $(du -k examples/tollgate.tgz | cut -f1) kB"

# Installs an example from scratch, checks what landed in node_modules, type-checks and builds it.
install_example () {
  local dir=$1
  step "$dir: install, check node_modules, type-check and build"
  rm -rf "$dir/node_modules" "$dir/dist"
  (cd "$dir" && npm install --no-package-lock --no-audit --no-fund)

  # One fastify: the app's own, which Tollgate (a peer) decorates. A second copy would get the plugin.
  local copies
  copies=$(find "$dir/node_modules" -path '*/node_modules/fastify/package.json' | wc -l)
  (cd "$dir" && npm ls fastify --all) || fail "$dir: npm ls fastify reports a problem"
  [ "$copies" -eq 1 ] || fail "$dir: $copies copies of fastify installed, expected 1"

  local tool found
  for tool in "${DEV_TOOLS[@]}"; do
    found=$(find "$dir/node_modules" -path "*/node_modules/$tool" -prune | head -n 3)
    [ -z "$found" ] || fail "$dir: a development tool of Tollgate's was installed: $found"
  done

  (cd "$dir" && npm exec --no -- tsc -p .)
  # Also as a stricter project types it: optional options must take `process.env.X` (string | undefined).
  # skipLibCheck there, since MikroORM's own declarations do not compile under exactOptionalPropertyTypes.
  (cd "$dir" && npm exec --no -- tsc -p . --noEmit --exactOptionalPropertyTypes --skipLibCheck)
}

# Runs a smoke script of an example, bounded; extra arguments are environment assignments.
run_smoke () {
  local dir=$1 script=$2
  shift 2
  (cd "$dir" && env -u DATABASE_URL -u REDIS_URL -u REDIS_KEY_PREFIX -u DATA_DIR "$@" timeout --foreground --kill-after=10 "$SMOKE_TIMEOUT" node "$script")
}

# ---------------------------------------------------------------------------------------------
install_example examples/embed

step "examples/embed: embedded default (PGlite, in-process token store)"
mkdir "$scratch/embed-default"
run_smoke examples/embed dist/smoke.js DATA_DIR="$scratch/embed-default"

step "examples/embed: PostgreSQL and Redis (the host's @fastify/redis client)"
database="embed_smoke_$(random_hex)"
redis_prefix="embed-smoke-$(random_hex)"
psql_admin "create database \"$database\""
mkdir "$scratch/embed-servers"
run_smoke examples/embed dist/smoke.js DATA_DIR="$scratch/embed-servers" \
  DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$database" \
  REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT" REDIS_KEY_PREFIX="$redis_prefix"

# ---------------------------------------------------------------------------------------------
install_example examples/resource-server

step "examples/resource-server: a logout on the server is refused at the resource server at once"
run_smoke examples/resource-server dist/smoke.js REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT"

step "examples/resource-server: tollgate/verify loads neither the ORM, PGlite nor argon2"
run_smoke examples/resource-server dist/check-light.js

step "examples passed in $((SECONDS - started)) s"

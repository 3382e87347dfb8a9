#!/usr/bin/env bash
# Builds the release tarballs, laid out as Prometheus's are: for each
# architecture, DIST/perfagent-VERSION.linux-ARCH.tar.gz holding
# perfagent-VERSION.linux-ARCH/ with the perfagent and llmsim binaries
# (static, CGO off), LICENSE, README.md, the example configurations, the
# built-in bottleneck rules and engine profiles, the dashboards and the
# rendered mixin; then DIST/sha256sums.txt over the tarballs.
# Environment: LDFLAGS (the version stamp, from the Makefile), ARCHS
# (default "amd64 arm64"), DIST (default dist).
# Files in the tarballs carry the last commit's time, so a rebuild of the
# same commit gives the same archive.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${LDFLAGS:?set LDFLAGS (make release does)}"
version=$(cat VERSION)
dist=${DIST:-dist}
read -r -a archs <<<"${ARCHS:-amd64 arm64}"
mtime=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)

rm -rf "$dist"
mkdir -p "$dist"
for arch in "${archs[@]}"; do
  name=perfagent-$version.linux-$arch
  dir=$dist/$name
  mkdir -p "$dir"/{examples,rules,profiles,dashboards,mixin}
  for cmd in perfagent llmsim; do
    CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$dir/$cmd" "./cmd/$cmd"
  done
  cp LICENSE README.md "$dir/"
  # The two example configurations at the top, as prometheus.yml is.
  cp examples/perfagent.yml examples/perfagent-remote.yml "$dir/"
  cp -r examples/demo examples/stack "$dir/examples/"
  cp rules/builtin/bottlenecks.yml "$dir/rules/"
  cp collector/profiles/*.yml "$dir/profiles/"
  cp dashboards/*.json "$dir/dashboards/"
  cp -r mixin/out "$dir/mixin/"
  tar -C "$dist" -czf "$dist/$name.tar.gz" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="$mtime" "$name"
  rm -rf "$dir"
done
(cd "$dist" && sha256sum -- *.tar.gz >sha256sums.txt)
echo "release $version:"
cat "$dist/sha256sums.txt"

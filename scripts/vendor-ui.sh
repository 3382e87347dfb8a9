#!/usr/bin/env bash
# Vendors the browser assets the agent embeds, from the npm registry, at
# pinned versions: Swagger UI (/docs), ReDoc (/redoc) and uPlot (the UI's
# charts). npm checks each
# tarball against the registry's integrity hash, which is recorded in
# web/static/vendor/VERSIONS with the files taken. Run it to upgrade; the
# agent needs no network at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

swagger=swagger-ui-dist@5.35.0
redoc=redoc@3.0.1
uplot=uplot@1.6.32
out=web/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$swagger" "$redoc" "$uplot" >/dev/null)
rm -rf "$out"
mkdir -p "$out/swagger-ui" "$out/redoc" "$out/uplot"
tar -xzf "$tmp"/swagger-ui-dist-*.tgz -C "$tmp" && mv "$tmp/package" "$tmp/swagger"
tar -xzf "$tmp"/redoc-*.tgz -C "$tmp" && mv "$tmp/package" "$tmp/redoc"
cp "$tmp"/swagger/{swagger-ui-bundle.js,swagger-ui.css,LICENSE,NOTICE} "$out/swagger-ui/"
cp "$tmp"/redoc/bundles/redoc.standalone.js "$tmp"/redoc/LICENSE "$out/redoc/"
tar -xzf "$tmp"/uplot-*.tgz -C "$tmp" && mv "$tmp/package" "$tmp/uplot"
cp "$tmp"/uplot/dist/{uPlot.iife.min.js,uPlot.min.css} "$tmp"/uplot/LICENSE "$out/uplot/"
{
  echo "# Browser assets vendored by scripts/vendor-ui.sh from the npm registry."
  for pkg in "$swagger" "$redoc" "$uplot"; do
    echo "$pkg $(cd "$tmp" && npm view "$pkg" dist.integrity)"
  done
} >"$out/VERSIONS"
cat "$out/VERSIONS"

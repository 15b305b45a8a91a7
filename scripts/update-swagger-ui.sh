#!/usr/bin/env bash
# Refreshes the copy of Swagger UI under docs/ui from the npm package
# swagger-ui-dist at an exact VERSION (`npm view swagger-ui-dist version`
# prints the latest). Only what the reference page loads is copied, with the
# licence files that must travel with it; index.html and
# swagger-initializer.js are ours and left alone.
#
# Reproducible: the tarball's SHA-512 must equal the registry's dist.integrity,
# and, when VERSION is the version already recorded in
# docs/ui/swagger-ui-dist.version, the integrity recorded there too. Running
# it again for the same version changes nothing.
set -euo pipefail

VERSION=${1:-}
if [[ ! $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "usage: $0 VERSION   (an exact version such as 5.35.0)" >&2
  exit 2
fi
for tool in npm node tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$0: $tool is needed (Debian: apt-get install -y nodejs npm)" >&2; exit 1; }
done

dest=$(cd "$(dirname "$0")/.." && pwd)/docs/ui
record=$dest/swagger-ui-dist.version
files=(swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css index.css favicon-32x32.png LICENSE NOTICE)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

want=$(npm view "swagger-ui-dist@$VERSION" dist.integrity)
[ -n "$want" ] || { echo "$0: the registry has no swagger-ui-dist@$VERSION" >&2; exit 1; }
if [ -f "$record" ] && [ "$(sed -n 1p "$record")" = "swagger-ui-dist $VERSION" ] && [ "$(sed -n 2p "$record")" != "$want" ]; then
  echo "$0: the registry's integrity of $VERSION differs from the one recorded in $record" >&2
  exit 1
fi

npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null
tarball=swagger-ui-dist-$VERSION.tgz
got=$(node -e 'const fs=require("fs"),c=require("crypto");process.stdout.write("sha512-"+c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tarball")
if [ "$got" != "$want" ]; then
  echo "$0: $tarball has integrity $got, the registry says $want" >&2
  exit 1
fi

tar -xzf "$tarball"
for f in "${files[@]}"; do
  install -m 0644 "package/$f" "$dest/$f"
done
printf 'swagger-ui-dist %s\n%s\n' "$VERSION" "$want" >"$record"

echo "docs/ui now holds swagger-ui-dist $VERSION ($(cat "${files[@]/#/$dest/}" | wc -c) bytes copied)."
echo "Next: go test ./docs/ (it checks that nothing is loaded from outside and that the page shows the API)."

#!/usr/bin/env bash
# Installs the system packages that some test markers need: chromium (`browser` tests, driven
# by Playwright) and postgresql (`postgres` tests start a throwaway server as a non-root user).
set -u
needed=(chromium postgresql)
if [ ${#needed[@]} -eq 0 ]; then
  exit 0
fi
missing=()
for pkg in "${needed[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "system-deps: installing ${missing[*]} with apt-get"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
    || echo "system-deps: WARNING apt-get failed for ${missing[*]}; tests that need them will be SKIPPED" >&2
else
  echo "system-deps: WARNING not root or no apt-get; missing ${missing[*]}: tests that need them will be SKIPPED" >&2
fi

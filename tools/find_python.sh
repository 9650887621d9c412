#!/usr/bin/env sh
# Print the path of a Python >= 3.12 interpreter, searching PATH first and then pyenv's
# versions, preferring 3.12 (the version the stack was measured on; on these machines 3.12/3.13 are installed with pyenv but are not on PATH).
ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }
for p in python3.12 python3.13 python3 python; do
  c=$(command -v "$p" 2>/dev/null) || continue
  # pyenv shims refuse versions that are not selected; skip them here.
  case "$c" in */.pyenv/shims/*) continue ;; esac
  if ok "$c"; then echo "$c"; exit 0; fi
done
root=${PYENV_ROOT:-$HOME/.pyenv}
for c in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9] 2>/dev/null | sort -V); do
  if ok "$c"; then echo "$c"; exit 0; fi
done
echo "no Python >= 3.12 found (looked on PATH and in $root/versions)" >&2
exit 1

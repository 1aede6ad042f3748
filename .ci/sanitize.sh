#!/usr/bin/env bash
# The C-backend half of the test suite against a build of the C core with
# AddressSanitizer and UndefinedBehaviorSanitizer (both compiled parts: the core
# and pyad/_speedups.c); any report fails it.
#
# The build is a throwaway: a copy of the repository installed into a
# temporary virtual environment (with the system site-packages, for numpy,
# cffi, pytest and hypothesis). The repository's own build and the installed
# pyad are not touched. Python is not built with ASan, so libasan is preloaded;
# its leak check is off because the interpreter leaks at exit by design.
#
# Left out: the Python-backend tests (-k "not python"), the RSS measurements of
# tests/test_memory.py (ASan's shadow memory and quarantine make RSS
# meaningless) and tests/test_c_driver.py (tests/c/run.sh has its own
# sanitizer build). Each test file runs in its own pytest process (two at a
# time, SANITIZE_JOBS; each with its own report folder), so that a
# sanitizer abort ends only that file's run; its report is printed after it.
# Usage: .ci/sanitize.sh [extra pytest arguments]
#        SANITIZE_FILES='test_hostile*' .ci/sanitize.sh   (only these test files)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"  # the one pytest runs on
CC="${CC:-gcc}"
work="$(mktemp -d "${TMPDIR:-/tmp}/pyad-sanitize.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS

libasan="$("$CC" -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
    echo "sanitize.sh: $CC has no libasan.so" >&2
    exit 1
fi

# A copy of the sources without build products.
mkdir "$work/src" "$work/reports"
tar -C "$root" --exclude=.git --exclude=build --exclude='*.egg-info' --exclude='*.so' \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis -cf - . \
    | tar -C "$work/src" -xf -

"$PYTHON" -m venv --system-site-packages "$work/venv"
py="$work/venv/bin/python"
# A build and run dependency the system site-packages may lack (the BLAS of product rows).
"$py" -c 'import scipy_openblas32' 2>/dev/null \
    || "$py" -m pip install --quiet --disable-pip-version-check scipy-openblas32
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -g -O1"
echo "== building pyad with $flags"
PYAD_CFLAGS="$flags" PYAD_LDFLAGS="-fsanitize=address,undefined" \
    "$py" -m pip install --quiet --no-build-isolation --no-deps --no-cache-dir \
    --disable-pip-version-check "$work/src"

# libstdc++ right after libasan: C++ extensions that throw (optree raises its
# structure errors through C++ exceptions) need ASan's __cxa_throw interceptor
# to find the real one, which it looks up when it starts.
libstdcxx="$("$CC" -print-file-name=libstdc++.so.6)"
export LD_PRELOAD="$libasan${libstdcxx:+ $libstdcxx}"
# Reports go to files too: pytest captures stderr, and an abort would lose them.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1:log_path=$work/reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$work/reports/ubsan"
export PYTHONFAULTHANDLER=1
export PYAD_FUZZ_EXAMPLES="${PYAD_FUZZ_EXAMPLES:-25}"
unset PYAD_BACKEND

# The tests must import the sanitized build, not the repository's.
cd "$work"
"$py" -c '
import sys
import pyad
from pyad import _pyad_c, _speedups
venv = sys.argv[1]
for mod in (pyad, _pyad_c, _speedups):
    if not mod.__file__.startswith(venv):
        sys.exit(f"sanitize.sh: imported {mod.__file__}, not the sanitized build in {venv}")
for ext in (_pyad_c, _speedups):
    with open(ext.__file__, "rb") as f:
        if b"__asan_" not in f.read():
            sys.exit(f"sanitize.sh: {ext.__file__} has no AddressSanitizer instrumentation")
    print("== sanitized extension:", ext.__file__)
' "$work/venv"

echo "== C-backend tests under ASan/UBSan (${SANITIZE_JOBS:-2} files at a time)"
# One test file's run, in its own pytest process with its own sanitizer report
# folder, so that files can run side by side (most of the time is each
# process's start under ASan). Writes the file's log and, if it failed, a mark.
run_file() {
    local file="$1" name reports out rc summary id
    name="$(basename "$file")"
    reports="$work/reports/$name"
    out="$work/logs/$name.out"
    mkdir -p "$reports"
    export ASAN_OPTIONS="$ASAN_BASE:log_path=$reports/asan"
    export UBSAN_OPTIONS="$UBSAN_BASE:log_path=$reports/ubsan"
    local deselect=() crashed=()
    {
    while :; do
        rc=0
        # --capture=sys: what C writes to stderr (UBSan's reports) is not swallowed
        # shellcheck disable=SC2086
        "$py" -m pytest -v -p no:cacheprovider --capture=sys --rootdir="$work/src" "$file" \
            -k "not python and not rss" "${deselect[@]}" $SANITIZE_PYTEST_ARGS > "$out" 2>&1 || rc=$?
        summary="$(grep -E '^=+ .*(passed|failed|error|deselected|no tests ran).* in [0-9.]+s' "$out" \
                   | tail -1 | tr -d '=' || true)"
        [ "$rc" != 0 ] && [ -n "$summary" ] || [ "$rc" = 0 ] && break
        # No summary: the process died in a test (a sanitizer report); note it,
        # leave it out, and run the rest of the file.
        id="$(grep -oE '^[^ ]+::[^ ]+' "$out" | tail -1 || true)"
        id="${id#src/}"  # shown relative to $work, selected relative to the rootdir
        crashed+=("$id")
        echo "---- $name: $id ended the process:"
        grep -E "runtime error|ERROR: AddressSanitizer|^SUMMARY" "$out" | head -5 || true
        for report in "$reports"/asan.*; do
            [ -e "$report" ] || continue
            grep -vE "^ +#[0-9]+ 0x[0-9a-f]+ in (_Py|Py|_PyEval|pymain|cfunction|method_vectorcall|_start|__libc)" "$report" | head -25 || true
            rm -f "$report"
        done
        [ -n "$id" ] && [ ${#crashed[@]} -lt 20 ] || break
        deselect+=(--deselect "$id")
    done
    [ "$rc" = 5 ] && [ ${#crashed[@]} = 0 ] && return 0  # nothing selected in this file
    echo "$name: ${summary:-no summary}${crashed:+, ${#crashed[@]} crashed}"
    if [ "$rc" != 0 ] && [ "$rc" != 5 ] || [ ${#crashed[@]} != 0 ]; then
        touch "$work/logs/$name.failed"
        grep -E "^(FAILED|ERROR) " "$out" | head -20 || true
        grep -E "^E  " "$out" | head -10 || true
    fi
    for report in "$reports"/asan.*; do  # from subprocesses the tests started
        [ -e "$report" ] || continue
        echo "---- sanitizer report from a subprocess of $name:"
        grep -E "ERROR: AddressSanitizer|^SUMMARY|^ +#[0-9]+ 0x[0-9a-f]+ in (pyad|tape|record|forward|reverse|batch|vector|serialize|scalar|rowstore)" \
            "$report" | head -12 || true
        rm -f "$report"
    done
    } > "$work/logs/$name.report" 2>&1
}
export -f run_file
export work py ASAN_BASE="${ASAN_OPTIONS%:log_path=*}" UBSAN_BASE="${UBSAN_OPTIONS%:log_path=*}"
export SANITIZE_PYTEST_ARGS="$*"
mkdir -p "$work/logs"
files=()
for file in "$work"/src/tests/${SANITIZE_FILES:-test_*.py}; do
    [ "$(basename "$file")" = test_c_driver.py ] || files+=("$file")
done
printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "${SANITIZE_JOBS:-2}" bash -c 'run_file "$1"' _
failed=()
for file in "${files[@]}"; do  # the reports in file order
    name="$(basename "$file")"
    [ -e "$work/logs/$name.report" ] && cat "$work/logs/$name.report"
    [ -e "$work/logs/$name.failed" ] && failed+=("$name")
done
echo "== sanitized run took $((SECONDS - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "sanitize.sh: failures in ${failed[*]}" >&2
    exit 1
fi

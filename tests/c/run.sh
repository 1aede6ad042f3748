#!/usr/bin/env bash
# Builds tests/c/test_core.c with the C core (csrc/*.c) and runs it twice:
#   1. with AddressSanitizer + UndefinedBehaviorSanitizer (any report fails),
#   2. without sanitizers under valgrind, when valgrind is installed.
# Both builds must be warning-free (-Wall -Wextra -Werror), and both wrap
# malloc/calloc/realloc so the driver can fail each allocation in turn.
# Build products go to a temporary directory; nothing in the repository changes.
# Exit status: 0 when both runs pass.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
CC="${CC:-gcc}"
work="$(mktemp -d "${TMPDIR:-/tmp}/pyad-ctest.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Product rows call the OpenBLAS of the scipy-openblas32 wheel, as the cffi build does.
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
read -r blas_lib blas_name < <("$PYTHON" -c 'import scipy_openblas32 as o
print(o.get_lib_dir(), o.get_library())') || {
    echo "run.sh: scipy_openblas32 is not importable by $PYTHON (pip install scipy-openblas32)"
    exit 1
}
blas=(-L"$blas_lib" -l"$blas_name" -Wl,-rpath,"$blas_lib")
common=(-std=c11 -g -Wall -Wextra -Werror -I"$root/csrc" -DPYAD_TEST_FAULTS)
wrap=(-Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc)
sources=("$here/test_core.c" "$root"/csrc/*.c)
status=0

# As pyad/_build_ffi.py does: glibc's vector math for the batched sweeps, where
# it exists. The sanitized build takes that path, the valgrind build the plain one.
vector=()
if [ "$(uname -m)" = x86_64 ] && [ -z "${PYAD_NO_VECTOR_MATH:-}" ] \
        && [ -e "$("$CC" -print-file-name=libmvec.so)" ]; then
    vector=(-DPYAD_VECTOR_MATH -fno-math-errno -lmvec)
fi

echo "== C driver with AddressSanitizer and UndefinedBehaviorSanitizer"
if "$CC" "${common[@]}" -O1 -fno-omit-frame-pointer \
        -fsanitize=address,undefined -fno-sanitize-recover=all \
        "${sources[@]}" "${wrap[@]}" "${vector[@]}" "${blas[@]}" -lm -o "$work/test_core_asan"; then
    ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
        "$work/test_core_asan" || status=1
else
    echo "build with sanitizers failed"
    status=1
fi

if command -v valgrind >/dev/null 2>&1; then
    echo "== C driver under valgrind"
    if "$CC" "${common[@]}" -O2 "${sources[@]}" "${wrap[@]}" "${blas[@]}" -lm -o "$work/test_core"; then
        valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all \
            --show-leak-kinds=all "$work/test_core" || status=1
    else
        echo "build without sanitizers failed"
        status=1
    fi
else
    echo "== valgrind is not installed: skipping the valgrind run"
fi
exit $status

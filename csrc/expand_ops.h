/* Expands the registry (ops.def) with the SPECIAL / UNARY / BINARY /
 * WITH_CONST / COMPARE / COMPARE_C macros the including code has just defined,
 * then undefines them, so each expansion starts from a clean slate. Included
 * once per expansion (no include guard on purpose). */
#include "ops.def"
#undef SPECIAL
#undef UNARY
#undef BINARY
#undef WITH_CONST
#undef COMPARE
#undef COMPARE_C

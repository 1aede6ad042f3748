/* Expands the primitive table with the SPECIAL / PRIMITIVE / COMPARE /
 * COMPARE_C macros the including code has just defined, then undefines them.
 * Included once per expansion (no include guard on purpose). */
#include "ops.def"
#undef SPECIAL
#undef PRIMITIVE
#undef COMPARE
#undef COMPARE_C

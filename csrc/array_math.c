/* Vector math for elementwise block rows: see array_math.h. */
#include <math.h>
#include <string.h>

#include "array_math.h"
#include "tape.h"

#if defined(PYAD_ARRAY_MATH) && defined(__GNUC__) && defined(__x86_64__)

typedef double quad __attribute__((vector_size(32)));
typedef quad (*quad_fn)(quad);

/* libmvec's AVX2 variants (the x86_64 vector function ABI's names). */
#define QUAD_FUNCTIONS(X)                                                                   \
    X(exp) X(log) X(log1p) X(expm1) X(sin) X(cos) X(tan) X(tanh) X(sinh) X(cosh)           \
    X(asin) X(acos) X(atan) X(asinh) X(acosh) X(atanh) X(exp2) X(log2) X(log10)
#define DECLARE_QUAD(f) extern quad _ZGVdN4v_##f(quad);
QUAD_FUNCTIONS(DECLARE_QUAD)

/* The ops whose registry value is exactly one of those functions of x. */
static quad_fn quad_variant(int op)
{
    switch (op) {
    case OP_exp: return _ZGVdN4v_exp;
    case OP_log: return _ZGVdN4v_log;
    case OP_log1p: return _ZGVdN4v_log1p;
    case OP_expm1: return _ZGVdN4v_expm1;
    case OP_sin: return _ZGVdN4v_sin;
    case OP_cos: return _ZGVdN4v_cos;
    case OP_tan: return _ZGVdN4v_tan;
    case OP_tanh: return _ZGVdN4v_tanh;
    case OP_sinh: return _ZGVdN4v_sinh;
    case OP_cosh: return _ZGVdN4v_cosh;
    case OP_arcsin: return _ZGVdN4v_asin;
    case OP_arccos: return _ZGVdN4v_acos;
    case OP_arctan: return _ZGVdN4v_atan;
    case OP_arcsinh: return _ZGVdN4v_asinh;
    case OP_arccosh: return _ZGVdN4v_acosh;
    case OP_arctanh: return _ZGVdN4v_atanh;
    case OP_exp2: return _ZGVdN4v_exp2;
    case OP_log2: return _ZGVdN4v_log2;
    case OP_log10: return _ZGVdN4v_log10;
    default: return NULL;
    }
}

/* The variants use AVX2 and FMA instructions: on another CPU every block row
 * keeps the scalar libm (the same for all its elements and sweeps). */
static int cpu_has_quads(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int array_math_has(int op) { return quad_variant(op) != NULL && cpu_has_quads(); }

__attribute__((target("avx2,fma"))) static void map_quads(quad_fn f, const double *x,
                                                            int64_t sx, double *z, int64_t n)
{
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const double *p = x + j * sx;
        quad q = {p[0], p[sx], p[2 * sx], p[3 * sx]};
        quad r = f(q);
        memcpy(z + j, &r, sizeof r);
    }
    if (j < n) { /* the tail, padded with 0.0 (its lanes' results are dropped) */
        quad q = {0.0, 0.0, 0.0, 0.0};
        for (int64_t l = 0; j + l < n; ++l)
            q[l] = x[(j + l) * sx];
        quad r = f(q);
        for (int64_t l = 0; j + l < n; ++l)
            z[j + l] = r[l];
    }
}

void array_math_values(int op, const double *x, int64_t sx, double *z, int64_t n)
{
    map_quads(quad_variant(op), x, sx, z, n);
}

double array_math_one(int op, double x)
{
    double z;
    map_quads(quad_variant(op), &x, 0, &z, 1);
    return z;
}

#else /* no libmvec variants: block rows keep the scalar libm */

int array_math_has(int op)
{
    (void)op;
    return 0;
}

void array_math_values(int op, const double *x, int64_t sx, double *z, int64_t n)
{
    (void)op; (void)x; (void)sx; (void)z; (void)n;
}

double array_math_one(int op, double x)
{
    (void)op;
    return x;
}

#endif

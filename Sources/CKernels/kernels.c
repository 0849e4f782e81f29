#include "CKernels.h"

// Every kernel is built twice, for 256-bit AVX and for the baseline, and the loader picks
// one per machine (an ifunc). Without FMA in the target list the compiler cannot contract
// a*b+c, and AVX sqrt/div round exactly like SSE's, so both versions give bit-identical
// results; the AVX one runs the Adam row about twice as fast (8 lanes instead of 4).
#if defined(__x86_64__) && defined(__linux__)
#define HEED_KERNEL __attribute__((target_clones("avx", "default")))
#else
#define HEED_KERNEL
#endif

HEED_KERNEL void heed_adam_dense(float *restrict w, float *restrict m, float *restrict v,
                     const float *restrict grad, int64_t n,
                     float b1, float b2, float step_size, float eps_t, float decay_lr) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2, keep = 1.0f - decay_lr;
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float mi = b1 * m[i] + c1 * g;
        float vi = b2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        w[i] = keep * w[i] - step_size * mi / (__builtin_elementwise_sqrt(vi) + eps_t);
    }
}

HEED_KERNEL void heed_adagrad_dense(float *restrict w, float *restrict acc, const float *restrict grad,
                        int64_t n, float lr, float eps) {
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float a = acc[i] + g * g;
        acc[i] = a;
        w[i] -= lr * g / (__builtin_elementwise_sqrt(a) + eps);
    }
}

HEED_KERNEL void heed_sgd_dense(float *restrict w, const float *restrict grad, int64_t n, float lr) {
    for (int64_t i = 0; i < n; i++) w[i] -= lr * grad[i];
}

HEED_KERNEL void heed_sgd_momentum_dense(float *restrict w, float *restrict buf, const float *restrict grad,
                             int64_t n, float lr, float mu) {
    for (int64_t i = 0; i < n; i++) {
        float b = mu * buf[i] + grad[i];
        buf[i] = b;
        w[i] -= lr * b;
    }
}

HEED_KERNEL void heed_stream_copy(float *restrict a, const float *restrict b, int64_t n) {
    for (int64_t i = 0; i < n; i++) a[i] = b[i];
}

HEED_KERNEL void heed_stream_triad(float *restrict a, const float *restrict b, const float *restrict c,
                       float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}

HEED_KERNEL void heed_random_rows_add(float *restrict base, int64_t row_floats, const uint32_t *restrict rows,
                                      int64_t n, int64_t ahead) {
    for (int64_t i = 0; i < n; i++) {
        if (i + ahead < n) heed_prefetch_range(base + (int64_t)rows[i + ahead] * row_floats, 4 * row_floats);
        float *r = base + (int64_t)rows[i] * row_floats;
        for (int64_t j = 0; j < row_floats; j++) r[j] += 1.0f;
    }
}

// Row forms, after the multiversioned definitions they call.
void heed_adam_row(float *row, const float *grad, int64_t dim,
                   float b1, float b2, float step_size, float eps_t, float decay_lr) {
    heed_adam_dense(row, row + dim, row + 2 * dim, grad, dim, b1, b2, step_size, eps_t, decay_lr);
}

void heed_adagrad_row(float *row, const float *grad, int64_t dim, float lr, float eps) {
    heed_adagrad_dense(row, row + dim, grad, dim, lr, eps);
}

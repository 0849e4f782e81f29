#include "CKernels.h"

// Every kernel is built three times, for AVX-512, for 256-bit AVX and for the baseline,
// and the loader picks one per machine (an ifunc). All versions must give bit-identical
// results (distributed runs are compared bitwise to in-process ones), so contraction of
// a*b+c into an FMA is switched off for the whole file: AVX-512 implies FMA, and a fused
// multiply-add rounds once where the baseline rounds twice. sqrt and div are correctly
// rounded in every instruction set. AVX runs the Adam row about twice as fast as SSE (8
// lanes instead of 4); AVX-512 halves the instruction count again (16 lanes).
#pragma clang fp contract(off)
#if defined(__x86_64__) && defined(__linux__)
#define HEED_KERNEL __attribute__((target_clones("avx512f", "avx", "default")))
#else
#define HEED_KERNEL
#endif

// One Adam step on [w | m | v] (each n floats); shared by the dense and row kernels so
// they round identically.
static inline __attribute__((always_inline)) void adam_step(float *restrict w, float *restrict m, float *restrict v,
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

HEED_KERNEL void heed_adam_dense(float *restrict w, float *restrict m, float *restrict v,
                     const float *restrict grad, int64_t n,
                     float b1, float b2, float step_size, float eps_t, float decay_lr) {
    adam_step(w, m, v, grad, n, b1, b2, step_size, eps_t, decay_lr);
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
                                      int64_t n, int64_t ahead, int64_t far) {
    for (int64_t i = 0; i < n; i++) {
        if (far > 0 && i + far < n) heed_prefetch_range_l2(base + (int64_t)rows[i + far] * row_floats, 4 * row_floats);
        if (i + ahead < n) heed_prefetch_range(base + (int64_t)rows[i + ahead] * row_floats, 4 * row_floats);
        float *r = base + (int64_t)rows[i] * row_floats;
        for (int64_t j = 0; j < row_floats; j++) r[j] += 1.0f;
    }
}

int64_t heed_index_find_rows(const uint64_t *slots, uint64_t mask, const uint64_t *keys, const uint64_t *hashes,
                             const int32_t *order, int64_t m, void **rows, int64_t slot_ahead,
                             int64_t row_prefetch_bytes) {
    int64_t found = 0;
    for (int64_t j = 0; j < m; j++) {
        if (j + slot_ahead < m) __builtin_prefetch(slots + 2 * (hashes[order[j + slot_ahead]] & mask), 0, 3);
        int64_t p = order[j];
        uint64_t key = keys[p], i = hashes[p] & mask;
        void *row = NULL;
        for (;;) {
            const uint64_t *s = slots + 2 * i;
            if (s[1] == 0) break;
            if (s[0] == key) { row = (void *)(uintptr_t)s[1]; break; }
            i = (i + 1) & mask;
        }
        rows[j] = row;
        if (row) {
            found++;
            // Towards L2, not L1: a group's rows are more lines than L1 can have in flight,
            // and prefetches into L1 stall once its miss buffers are full.
            if (row_prefetch_bytes > 0) heed_prefetch_range_l2(row, row_prefetch_bytes);
        }
    }
    return found;
}

HEED_KERNEL int64_t heed_adam_rows(void *const *rows, const float *grads, const int32_t *order, int64_t m, int64_t from,
                                   int64_t dim, int64_t header_bytes, float b1, float b2,
                                   const float *coefs, int64_t ncoefs, int32_t coefs_final, uint32_t touch, int64_t ahead) {
    const int64_t record = header_bytes + 12 * dim, grad_bytes = 4 * dim;
    for (int64_t q = from; q < m && q < from + ahead; q++) {
        if (rows[q]) {
            heed_prefetch_range(rows[q], record);
            heed_prefetch_range(grads + order[q] * dim, grad_bytes);
        }
    }
    for (int64_t q = from; q < m; q++) {
        if (q + ahead < m && rows[q + ahead]) {
            heed_prefetch_range(rows[q + ahead], record);
            heed_prefetch_range(grads + order[q + ahead] * dim, grad_bytes);
        }
        char *row = (char *)rows[q];
        if (!row) continue;
        uint32_t old = *(uint32_t *)(row + 8);
        uint32_t t = old == UINT32_MAX ? old : old + 1;
        const int64_t k = (int64_t)t - 1;
        if (k >= ncoefs && !coefs_final) return q;
        *(uint32_t *)(row + 8) = t;
        if (*(uint32_t *)(row + 12) < touch) *(uint32_t *)(row + 12) = touch;
        const float *c = coefs + 3 * (k < ncoefs ? k : ncoefs - 1);
        float *w = (float *)(row + header_bytes);
        adam_step(w, w + dim, w + 2 * dim, grads + order[q] * dim, dim, b1, b2, c[0], c[1], c[2]);
    }
    return m;
}

// Row forms, after the multiversioned definitions they call.
void heed_adam_row(float *row, const float *grad, int64_t dim,
                   float b1, float b2, float step_size, float eps_t, float decay_lr) {
    heed_adam_dense(row, row + dim, row + 2 * dim, grad, dim, b1, b2, step_size, eps_t, decay_lr);
}

void heed_adagrad_row(float *row, const float *grad, int64_t dim, float lr, float eps) {
    heed_adagrad_dense(row, row + dim, grad, dim, lr, eps);
}

// Cephes expf for x already clamped to [-87, 88]: the operations of HeedLayers'
// cephesExp(clamped:), in the same order (contraction is off for this file).
static inline __attribute__((always_inline)) float cephes_exp(float x) {
    const float magic = 12582912.0f;
    float t = x * 1.44269504f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f + n * 2.1219444e-4f;
    float p = 1.98756915e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    uint32_t tb, mb, sb;
    __builtin_memcpy(&tb, &t, 4);
    __builtin_memcpy(&mb, &magic, 4);
    sb = (tb - mb + 127u) << 23;
    float scale;
    __builtin_memcpy(&scale, &sb, 4);
    return (p * r * r + r + 1.0f) * scale;
}

HEED_KERNEL
void heed_dice_apply(float *restrict out, float *restrict normalized, float *restrict gate, const float *restrict x,
                     const float *restrict mean, const float *restrict inv_std, const float *restrict alpha, int64_t rows, int64_t d) {
    for (int64_t row = 0; row < rows; row++) {
        const float *xs = x + row * d;
        float *sh = normalized + row * d, *g = gate + row * d, *o = out + row * d;
        for (int64_t j = 0; j < d; j++) {
            float s = (xs[j] - mean[j]) * inv_std[j];
            sh[j] = s;
            float v = -s;
            v = v < -87.0f ? -87.0f : v;
            v = v > 88.0f ? 88.0f : v;
            float p = 1.0f / (1.0f + cephes_exp(v));
            g[j] = p;
            o[j] = xs[j] * (alpha[j] + (1.0f - alpha[j]) * p);
        }
    }
}

HEED_KERNEL
void heed_dice_backward(float *restrict dx, float *restrict d_alpha, float *restrict sum_g, float *restrict sum_gs,
                        const float *restrict dout, const float *restrict x, const float *restrict alpha,
                        const float *restrict gate, const float *restrict normalized, const float *restrict inv_std,
                        const float *restrict row_mask, float inv_m, int64_t rows, int64_t d, int pass1) {
    if (pass1) {
        for (int64_t row = 0; row < rows; row++) {
            const float *dy = dout + row * d, *xs = x + row * d, *gt = gate + row * d, *sh = normalized + row * d;
            for (int64_t j = 0; j < d; j++) {
                float p = gt[j], dyx = dy[j] * xs[j];
                float g = dyx * (1.0f - alpha[j]) * p * (1.0f - p);
                d_alpha[j] += dyx * (1.0f - p);
                sum_g[j] += g;
                sum_gs[j] += g * sh[j];
            }
        }
    }
    if (dx == NULL) return;
    for (int64_t row = 0; row < rows; row++) {
        const float *dy = dout + row * d, *xs = x + row * d, *gt = gate + row * d, *sh = normalized + row * d;
        float *o = dx + row * d;
        float t = (row_mask == NULL || row_mask[row] != 0.0f) ? inv_m : 0.0f;
        for (int64_t j = 0; j < d; j++) {
            float p = gt[j], dyv = dy[j];
            float g = dyv * xs[j] * (1.0f - alpha[j]) * p * (1.0f - p);
            o[j] += dyv * (alpha[j] + (1.0f - alpha[j]) * p) + inv_std[j] * (g - t * (sum_g[j] + sh[j] * sum_gs[j]));
        }
    }
}

#ifndef HEED_CKERNELS_H
#define HEED_CKERNELS_H
// Hot numeric kernels in C. Swift's Float.squareRoot() keeps an errno branch that
// stops Adam loops from vectorising; clang's __builtin_elementwise_sqrt does not.
// Every kernel updates in place; array arguments never alias unless stated.
#include <stdint.h>
#include <stddef.h>

/// One Adam step on a row laid out as [w | m | v], each `dim` floats, in place.
///
/// Implements Kingma & Ba (2015), Algorithm 1, in the paper's "efficient" form
/// (Section 2): with a_t = lr * sqrt(1 - b2^t) / (1 - b1^t) and
/// e_t = eps * sqrt(1 - b2^t),
///   m = b1 m + (1 - b1) g
///   v = b2 v + (1 - b2) g^2
///   w = w - a_t m / (sqrt(v) + e_t) - decay_lr * w      (decay_lr = lr * wd, AdamW)
/// which equals w - lr * mhat / (sqrt(vhat) + eps) exactly in real arithmetic.
/// The decoupled decay uses w before this step's Adam update (Loshchilov & Hutter 2019).
void heed_adam_row(float *row, const float *grad, int64_t dim,
                   float b1, float b2, float step_size, float eps_t, float decay_lr);

/// Adam over a dense parameter vector: `w`, `m`, `v`, `grad` are separate arrays of `n`.
void heed_adam_dense(float *w, float *m, float *v, const float *grad, int64_t n,
                     float b1, float b2, float step_size, float eps_t, float decay_lr);

/// Adagrad (Duchi et al. 2011) on a row [w | acc]: acc += g^2; w -= lr g / (sqrt(acc) + eps).
void heed_adagrad_row(float *row, const float *grad, int64_t dim, float lr, float eps);

/// Adagrad over separate arrays `w`, `acc`, `grad` of `n` floats (same update as the row form).
void heed_adagrad_dense(float *w, float *acc, const float *grad, int64_t n, float lr, float eps);

/// Plain SGD over `n` floats: w -= lr g.
void heed_sgd_dense(float *w, const float *grad, int64_t n, float lr);

/// SGD with heavy-ball momentum in the form PyTorch and Sutskever et al. (2013) use:
/// buf = mu buf + g; w -= lr buf.
void heed_sgd_momentum_dense(float *w, float *buf, const float *grad, int64_t n, float lr, float mu);

/// STREAM "copy" (McCalpin 1995): a[i] = b[i]; moves 2 * 4 * n bytes.
void heed_stream_copy(float *a, const float *b, int64_t n);

/// STREAM "triad": a[i] = b[i] + s * c[i]; moves 3 * 4 * n bytes.
void heed_stream_triad(float *a, const float *b, const float *c, float s, int64_t n);

/// The random-row bound of a sparse update: for each `rows[i]`, adds 1 to the
/// `row_floats` floats of that row of `base`, prefetching whole rows towards L2 `far`
/// updates early (0: not at all) and into L1 `ahead` updates early, the way the table's
/// push does; moves 2 * 4 * row_floats bytes per update.
void heed_random_rows_add(float *base, int64_t row_floats, const uint32_t *rows, int64_t n, int64_t ahead, int64_t far);

/// Finds rows for a group of keys in a `KeyIndex` slot array, prefetching slots ahead.
///
/// `slots` holds (mask + 1) pairs `{key, value}` (value 0 = empty; linear probing from
/// `hash & mask`). For j in 0..<m, with p = order[j]: rows[j] = the value stored for
/// keys[p] (hash hashes[p]) as a pointer, or NULL when absent. Slots are prefetched
/// `slot_ahead` keys early; each found row's first `row_prefetch_bytes` are prefetched
/// towards L2 for a later pass. Returns the number of rows found.
int64_t heed_index_find_rows(const uint64_t *slots, uint64_t mask, const uint64_t *keys, const uint64_t *hashes,
                             const int32_t *order, int64_t m, void **rows, int64_t slot_ahead,
                             int64_t row_prefetch_bytes);

/// Lazy Adam over rows addressed by pointer (same arithmetic as `heed_adam_row`).
///
/// Each non-NULL rows[q] (q in from..<m) is a record `[key u64 | step u32 | lastTouched u32
/// | pad | w | m | v]` with the floats at `header_bytes`; it gets gradient
/// grads[order[q] * dim ..< +dim], its step goes up by one (saturating at UINT32_MAX),
/// lastTouched becomes max(lastTouched, touch), and Adam runs with the coefficients of
/// the new step t: coefs[3(t−1) ..< 3t] = {step_size, eps_t, decay_lr}, tabulated for
/// t in 1...ncoefs; when `coefs_final` is non-zero, every later step uses the last entry
/// (the coefficients have settled). Records and gradients are prefetched `ahead` rows
/// early. Returns m, or (only when `coefs_final` is 0) the first q whose new step is beyond
/// the table, with that row left untouched, so the caller can update it with computed
/// coefficients and resume at q + 1.
int64_t heed_adam_rows(void *const *rows, const float *grads, const int32_t *order, int64_t m, int64_t from,
                       int64_t dim, int64_t header_bytes, float b1, float b2,
                       const float *coefs, int64_t ncoefs, int32_t coefs_final, uint32_t touch, int64_t ahead);

/// Prefetch a cache line for writing (hides random-access latency of a row update).
static inline void heed_prefetch(const void *p) { __builtin_prefetch(p, 1, 3); }

/// Prefetch every 64-byte line of `[p, p + bytes)` for writing.
static inline void heed_prefetch_range(const void *p, int64_t bytes) {
    const char *c = (const char *)p;
    const char *end = c + bytes;
    // Start at the line holding p so a misaligned row still gets its last line.
    c = (const char *)((uintptr_t)c & ~(uintptr_t)63);
    for (; c < end; c += 64) __builtin_prefetch(c, 1, 3);
}

/// Prefetch every 64-byte line of `[p, p + bytes)` for writing, into L2 only (the L1
/// has far fewer miss buffers; a later `heed_prefetch_range` or load moves lines up fast).
static inline void heed_prefetch_range_l2(const void *p, int64_t bytes) {
    const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)63);
    const char *end = (const char *)p + bytes;
    for (; c < end; c += 64) __builtin_prefetch(c, 1, 2);
}

/// Dice's elementwise forward (Zhou et al. 2018, eq. 9) over (rows × d), given the
/// statistics: normalized = (x − mean)·inv_std, gate = sigmoid(normalized) (the Cephes expf
/// scheme of HeedLayers' sigmoidRow, same operations in the same order, so the results
/// equal the Swift loop's bit for bit), out = x·(alpha + (1 − alpha)·gate).
void heed_dice_apply(float *out, float *normalized, float *gate, const float *x,
                     const float *mean, const float *inv_std, const float *alpha, int64_t rows, int64_t d);

/// Dice's backward passes (HeedLayers' diceBackward, same operation order). Pass 1 over
/// every row: g = dout·x·(1 − α)·p·(1 − p); d_alpha += dout·x·(1 − p); sum_g += g;
/// sum_gs += g·ŝ. Pass 2 (when dx is not NULL): dx += dout·(α + (1 − α)·p) +
/// r·(g − t·(sum_g + ŝ·sum_gs)) with t = inv_m for rows in the statistics (row_mask NULL or
/// its entry non-zero) and 0 otherwise. d_alpha, sum_g, sum_gs are (d), accumulated.
void heed_dice_backward(float *dx, float *d_alpha, float *sum_g, float *sum_gs, const float *dout,
                        const float *x, const float *alpha, const float *gate, const float *normalized,
                        const float *inv_std, const float *row_mask, float inv_m, int64_t rows, int64_t d,
                        int pass1);

#endif

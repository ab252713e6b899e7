/*
 * The latency histogram's read side: which value a bucket stands for, and the quantiles of a
 * merged histogram. (The write side, hist_index, is inline in load.h.)
 *
 * The histogram is log-linear: 128 linear buckets per power of two, so a quantile is off by under
 * 0.8%, and recording a sample allocates nothing.
 */
#include "load.h"

#include <math.h>

/* The middle of bucket @i's range, in ns. */
static uint64_t hist_value(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t mant = i - shift * HIST_SUB;
    return (mant << shift) + (((uint64_t)1 << shift) - 1) / 2;
}

uint64_t load_hist_quantile(const uint64_t *h, uint64_t n, double q)
{
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* What every micro benchmark shares: the corio and google-benchmark headers, the shared main and
 * summary helpers, and the loop set-up; bm_common.cc defines them (it says how the figures are
 * taken). */
#ifndef CORIO_BM_COMMON_H
#define CORIO_BM_COMMON_H

#include <benchmark/benchmark.h>

#include <string>

/* corio_stats names both a struct and a function: g++ -Wshadow warns about the header. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include "corio.h"
#pragma GCC diagnostic pop

namespace corio_bm
{

/* Median over the repetitions of @name ("BM_op_nop_corio/256") of the CPU (or, with @real, the
 * wall-clock) ns per item. Returns NaN when it did not run. */
double median_ns(const std::string &name, bool real = false);

/* Median over the repetitions of @name of its user counter @counter. Returns NaN if absent. */
double median_counter(const std::string &name, const std::string &counter);

/* The error @name was skipped with, or "" (also when it did not run at all). */
std::string skip_reason(const std::string &name);

/* Prints "RATIO @what = <value><unit> (target <op> <target><unit>): PASS|FAIL", or SKIP when the
 * value could not be measured (@why says why). @op is ">=" or "<=". Returns true unless FAIL. */
bool ratio_line(const char *what, double value, const char *op, double target, const char *unit,
                const std::string &why);

/* Runs the registered benchmarks with the defaults bm_common.cc describes, then @summary, which
 * prints the RATIO lines. Returns the process exit status: 0, or 1 if the command line was bad.
 * A FAIL does not change it (a noisy machine must not break a script); grep the RATIO lines. */
int run_main(int argc, char **argv, void (*summary)());

/* A new loop with @opts (NULL: the defaults). If it cannot be made, the cause goes to stderr and
 * @state is skipped with "io_uring unavailable", as STYLE.md asks. Returns the loop, or nullptr. */
corio_loop *new_loop(benchmark::State &state, const corio_loop_opts *opts = nullptr);

/* Spawns @n coroutines running @fn(@arg) on @loop and runs the loop until they have all ended.
 * Returns the number of spawns that failed. Inline, because benchmarks time it. */
inline int spawn_and_run(corio_loop *loop, int n, corio_fn *fn, void *arg)
{
    int failed = 0;
    for (int i = 0; i < n; i++)
        failed += corio_spawn(nullptr, loop, fn, arg) != 0;
    corio_loop_run(loop);
    return failed;
}

} // namespace corio_bm

#endif

/* Context switch: corio's resume + yield against a glibc swapcontext pair.
 *
 * One item is one round trip: for corio, the loop resumes a coroutine and it calls corio_yield()
 * (two context switches, plus the loop iteration a yield goes through: the run queue, the check
 * whether the ring needs an io_uring_enter, a look at the CQ); for glibc, swapcontext() into a
 * context and swapcontext() back out (two switches, each with an rt_sigprocmask system call).
 * The google-benchmark loop itself runs inside the coroutine, so nothing but the yield is timed.
 */
#include "bm_common.h"

#include <cstdio>
#include <string>
#include <ucontext.h>
#include <vector>

namespace
{

/* Counters that show what one item cost the loop: context switches and loop iterations. */
void loop_counters(benchmark::State &state, const struct corio_stats *s, uint64_t sw0, uint64_t it0,
                   double items)
{
    if (items <= 0)
        return;
    state.counters["switch/item"] = double(s->switches - sw0) / items;
    state.counters["loopiter/item"] = double(s->iterations - it0) / items;
}

struct yielders {
    benchmark::State *state;
    bool stop; /* set by the driver when the timed loop is over */
};

/* Yields once per benchmark iteration. */
int yield_driver(void *arg)
{
    auto *y = static_cast<yielders *>(arg);
    for (auto _ : *y->state)
        benchmark::DoNotOptimize(corio_yield());
    y->stop = true;
    return 0;
}

/* The second coroutine of the pair: yields until the driver is done. */
int yield_partner(void *arg)
{
    auto *y = static_cast<yielders *>(arg);
    while (!y->stop)
        benchmark::DoNotOptimize(corio_yield());
    return 0;
}

/* One coroutine yielding in a loop; the scheduler resumes it each time. */
void BM_ctx_yield(benchmark::State &state)
{
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    yielders y{&state, false};
    const struct corio_stats *s = corio_loop_stats(loop);
    uint64_t sw0 = s->switches, it0 = s->iterations;
    /* A skip before the run makes the state loop in the driver run no iteration. */
    if (corio_spawn(nullptr, loop, yield_driver, &y) != 0)
        state.SkipWithError("corio_spawn failed");
    if (corio_loop_run(loop) != 0)
        state.SkipWithError("corio_loop_run failed");
    state.SetItemsProcessed(state.iterations());
    loop_counters(state, s, sw0, it0, double(state.iterations()));
    corio_loop_free(loop);
}
BENCHMARK(BM_ctx_yield);

/* Two coroutines yielding to each other through the scheduler: per item, one resume + yield. */
void BM_ctx_yield_pair(benchmark::State &state)
{
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    yielders y{&state, false};
    const struct corio_stats *s = corio_loop_stats(loop);
    uint64_t sw0 = s->switches, it0 = s->iterations;
    if (corio_spawn(nullptr, loop, yield_driver, &y) != 0 ||
        corio_spawn(nullptr, loop, yield_partner, &y) != 0)
        state.SkipWithError("corio_spawn failed");
    if (corio_loop_run(loop) != 0)
        state.SkipWithError("corio_loop_run failed");
    state.SetItemsProcessed(state.iterations() * 2);
    loop_counters(state, s, sw0, it0, double(state.iterations() * 2));
    corio_loop_free(loop);
}
BENCHMARK(BM_ctx_yield_pair);

/* The baseline: ping-pong between two ucontexts. */
ucontext_t uc_main, uc_peer;

void uc_peer_body()
{
    for (;;)
        swapcontext(&uc_peer, &uc_main);
}

void BM_ctx_swapcontext(benchmark::State &state)
{
    std::vector<char> stack(64 * 1024);
    getcontext(&uc_peer);
    uc_peer.uc_stack.ss_sp = stack.data();
    uc_peer.uc_stack.ss_size = stack.size();
    uc_peer.uc_link = nullptr;
    makecontext(&uc_peer, uc_peer_body, 0);
    swapcontext(&uc_main, &uc_peer); /* first entry, untimed */
    for (auto _ : state)
        swapcontext(&uc_main, &uc_peer);
    /* uc_peer stays parked in its loop and is abandoned with its stack. */
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ctx_swapcontext);

void summary()
{
    using namespace corio_bm;
    double yield = median_ns("BM_ctx_yield"), pair = median_ns("BM_ctx_yield_pair");
    double swap = median_ns("BM_ctx_swapcontext");
    std::string why = skip_reason("BM_ctx_yield");
    ratio_line("ctx_switch_vs_swapcontext", swap / yield, ">=", 15, "x", why);
    ratio_line("ctx_switch_2coros_vs_swapcontext", swap / pair, ">=", 15, "x", why);
    printf("  ns per resume+yield (CPU, median): corio 1 coroutine %.2f (real %.2f), "
           "2 coroutines %.2f (real %.2f); swapcontext pair %.2f (real %.2f)\n",
           yield, median_ns("BM_ctx_yield", true), pair, median_ns("BM_ctx_yield_pair", true), swap,
           median_ns("BM_ctx_swapcontext", true));
    printf("  loop iterations per resume+yield: 1 coroutine %.2f, 2 coroutines %.2f\n",
           median_counter("BM_ctx_yield", "loopiter/item"),
           median_counter("BM_ctx_yield_pair", "loopiter/item"));
}

} // namespace

int main(int argc, char **argv)
{
    return corio_bm::run_main(argc, argv, summary);
}

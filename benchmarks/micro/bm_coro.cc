/* Coroutine lifetime: spawn + run + end of a detached coroutine with a warm stack pool, against
 * the cost of one switch measured in the same binary.
 *
 * "One switch" here is one resume + yield pair (the loop resumes a coroutine, it calls
 * corio_yield(); two context switches and one loop iteration), as in bm_ctx. One item of
 * BM_coro_spawn_run_end is one coroutine: corio_spawn (stack from the pool, handle slot, initial
 * frame, run queue), its first resume, its return, and the end (slot freed, stack back to the
 * pool); the corio_loop_run() that runs a batch of N is shared by the N.
 */
#include "bm_common.h"

#include <cstdio>

namespace
{

int return_at_once(void *)
{
    return 0;
}

/* Spawns @n detached coroutines that return at once and runs the loop until they have ended.
 * Returns the number of failed spawns. */
int spawn_batch(corio_loop *loop, int n)
{
    return corio_bm::spawn_and_run(loop, n, return_at_once, nullptr);
}

/* N coroutines per batch; per item: one spawn + run + end. The loop's default options: the stack
 * pool keeps as many stacks as were live at once, so a batch of any size comes back whole. */
void BM_coro_spawn_run_end(benchmark::State &state)
{
    const int n = int(state.range(0));
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    spawn_batch(loop, n); /* warm the stack pool and the handle table: setup, untimed */
    int failed = 0;
    for (auto _ : state)
        failed += spawn_batch(loop, n);
    if (failed)
        state.SkipWithError("corio_spawn failed");
    state.SetItemsProcessed(state.iterations() * n);
    corio_loop_free(loop);
}
BENCHMARK(BM_coro_spawn_run_end)->Arg(1)->Arg(256)->Arg(2048);

/* One switch: a coroutine that yields once per benchmark iteration (as BM_ctx_yield). */
int yield_driver(void *arg)
{
    auto *state = static_cast<benchmark::State *>(arg);
    for (auto _ : *state)
        benchmark::DoNotOptimize(corio_yield());
    return 0;
}

void BM_coro_switch(benchmark::State &state)
{
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    if (corio_spawn(nullptr, loop, yield_driver, &state) != 0)
        state.SkipWithError("corio_spawn failed"); /* the state loop then runs no iteration */
    if (corio_loop_run(loop) != 0)
        state.SkipWithError("corio_loop_run failed");
    state.SetItemsProcessed(state.iterations());
    corio_loop_free(loop);
}
BENCHMARK(BM_coro_switch);

void summary()
{
    using namespace corio_bm;
    double spawn = median_ns("BM_coro_spawn_run_end/256");
    double spawn1 = median_ns("BM_coro_spawn_run_end/1");
    double sw = median_ns("BM_coro_switch");
    ratio_line("coro_spawn_run_end_vs_switch", spawn / sw, "<=", 10, "x",
               skip_reason("BM_coro_spawn_run_end/256"));
    double spawn2k = median_ns("BM_coro_spawn_run_end/2048");
    ratio_line("coro_spawn_run_end_2048_vs_256", spawn2k / spawn, "<=", 1.2, "x",
               skip_reason("BM_coro_spawn_run_end/2048"));
    printf("  ns (CPU, median): spawn+run+end per coroutine, batches of 256: %.2f (real %.2f); "
           "of 2048: %.2f (real %.2f); batches of 1 (a loop run each): %.2f (real %.2f); one "
           "switch = resume+yield pair: %.2f (real %.2f)\n",
           spawn, median_ns("BM_coro_spawn_run_end/256", true), spawn2k,
           median_ns("BM_coro_spawn_run_end/2048", true), spawn1,
           median_ns("BM_coro_spawn_run_end/1", true), sw, median_ns("BM_coro_switch", true));
}

} // namespace

int main(int argc, char **argv)
{
    return corio_bm::run_main(argc, argv, summary);
}

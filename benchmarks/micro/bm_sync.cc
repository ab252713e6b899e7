/* Coroutines working together: channel hand-offs, a buffered channel, mutex hand-offs and
 * generator resumes, each against the cost of one context switch measured in the same binary.
 *
 * The unit, "one context switch", is one resume + yield pair: the loop resumes a coroutine and it
 * calls corio_yield() (two stack switches and one trip through the loop's iteration: run queue,
 * the check whether the ring needs an io_uring_enter, a look at the CQ). It is the item of
 * BM_ctx_switch below and of BM_ctx_yield in bm_ctx.cc.
 *
 * Items, and what one costs:
 * - BM_chan_pingpong: one hand-off on an unbuffered channel. A sends to B (parked in recv), then
 *   parks in recv; B sends the value back and parks in recv again. Two hand-offs per round trip;
 *   each one wakes the peer through the run queue.
 * - BM_chan_buffered: one value through a channel of capacity 64, producer to consumer; they take
 *   turns when the buffer fills or drains, so the switch is shared by up to 64 values.
 * - BM_mutex_handoff: one hand-off of a mutex between two coroutines that each lock, yield once
 *   while holding it (so that the other one queues), and unlock (handing it over). The yield is
 *   part of the item.
 * - BM_gen_resume_yield: one corio_gen_next() plus the generator's corio_gen_yield() (a direct
 *   switch each way, no loop iteration).
 * - BM_ctx_switch: the unit.
 * The google-benchmark loop runs inside a coroutine, so nothing but the operation is timed; the
 * loop and coroutines are set up outside it.
 *
 * main() prints "RATIO chan_handoff / ctx_switch = x (target <= 3)": a channel hand-off costs no
 * more than three context switches. The other ratios are printed for information.
 */
#include "bm_common.h"

#include <cstdint>
#include <cstdio>
#include <string>

namespace
{

/* Loop statistics at the start of a measurement, turned into per-item counters at its end:
 * context switches, loop iterations and io_uring_enter calls (the mission metric) per item. */
struct stats_mark {
    const struct corio_stats *s;
    uint64_t sw, it, en;

    explicit stats_mark(const corio_loop *loop)
        : s(corio_loop_stats(loop)), sw(s->switches), it(s->iterations), en(s->enters)
    {
    }

    void report(benchmark::State &state, double items) const
    {
        if (items <= 0)
            return;
        state.counters["switch/item"] = double(s->switches - sw) / items;
        state.counters["loopiter/item"] = double(s->iterations - it) / items;
        state.counters["enter/item"] = double(s->enters - en) / items;
    }
};

/* Runs the loop; a benchmark whose coroutines failed is marked, not silently fast. */
void run_loop(benchmark::State &state, corio_loop *loop, const int *failed)
{
    int err = corio_loop_run(loop);
    if (err < 0)
        state.SkipWithError("corio_loop_run failed");
    else if (failed && *failed)
        state.SkipWithError("a corio call failed inside the benchmark");
}

/* ---- the unit: resume + yield ---------------------------------------------------------------- */

struct bench {
    benchmark::State *state;
    corio_chan *ch;
    corio_mutex mu;
    bool stop;
    int failed;
    uint64_t sum; /* what the receiving side saw, so that no work can be skipped */
};

int yield_driver(void *arg)
{
    auto *b = static_cast<bench *>(arg);
    for (auto _ : *b->state)
        if (corio_yield() != 0)
            b->failed++;
    return 0;
}

void BM_ctx_switch(benchmark::State &state)
{
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    bench b{&state, nullptr, CORIO_MUTEX_INIT, false, 0, 0};
    stats_mark m(loop);
    corio_spawn(nullptr, loop, yield_driver, &b);
    run_loop(state, loop, &b.failed);
    state.SetItemsProcessed(state.iterations());
    m.report(state, double(state.iterations()));
    corio_loop_free(loop);
}
BENCHMARK(BM_ctx_switch);

/* ---- channels -------------------------------------------------------------------------------- */

/* One channel benchmark: a channel of @capacity uint64_t values between @receiver, spawned first
 * so that it is parked in recv when the other starts, and @sender, which sends 1, 2, 3... one per
 * iteration of the timed loop and closes the channel after it. One iteration is @per_iter items.
 * The receiver adds up what it gets: a total short of n(n+1)/2 marks the benchmark, so that a
 * lost value cannot make it look fast. */
void run_chan_bench(benchmark::State &state, size_t capacity, corio_fn *receiver, corio_fn *sender,
                    int per_iter)
{
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    bench b{&state, nullptr, CORIO_MUTEX_INIT, false, 0, 0};
    if (corio_chan_new(&b.ch, sizeof(uint64_t), capacity) != 0) {
        state.SkipWithError("corio_chan_new failed");
        corio_loop_free(loop);
        return;
    }
    stats_mark m(loop);
    corio_spawn(nullptr, loop, receiver, &b);
    corio_spawn(nullptr, loop, sender, &b);
    run_loop(state, loop, &b.failed);
    benchmark::DoNotOptimize(b.sum);
    uint64_t n = uint64_t(state.iterations());
    if (b.sum != n * (n + 1) / 2)
        state.SkipWithError("values lost");
    state.SetItemsProcessed(state.iterations() * per_iter);
    m.report(state, double(state.iterations() * per_iter));
    corio_chan_free(b.ch);
    corio_loop_free(loop);
}

/* ---- channel ping-pong ----------------------------------------------------------------------- */

int pingpong_a(void *arg)
{
    auto *b = static_cast<bench *>(arg);
    uint64_t v = 0;
    for (auto _ : *b->state) {
        v++;
        if (corio_chan_send(b->ch, &v, CORIO_FOREVER) != 0 ||
            corio_chan_recv(b->ch, &v, CORIO_FOREVER) != 1)
            b->failed++;
    }
    corio_chan_close(b->ch);
    return 0;
}

int pingpong_b(void *arg)
{
    auto *b = static_cast<bench *>(arg);
    uint64_t v;
    while (corio_chan_recv(b->ch, &v, CORIO_FOREVER) == 1) {
        b->sum += v;
        if (corio_chan_send(b->ch, &v, CORIO_FOREVER) != 0)
            break; /* closed at the end */
    }
    return 0;
}

/* Unbuffered; an iteration is two hand-offs, A to B and back. */
void BM_chan_pingpong(benchmark::State &state)
{
    run_chan_bench(state, 0, pingpong_b, pingpong_a, 2);
}
BENCHMARK(BM_chan_pingpong);

/* ---- buffered channel ------------------------------------------------------------------------ */

int producer(void *arg)
{
    auto *b = static_cast<bench *>(arg);
    uint64_t v = 0;
    for (auto _ : *b->state) {
        v++;
        if (corio_chan_send(b->ch, &v, CORIO_FOREVER) != 0)
            b->failed++;
    }
    corio_chan_close(b->ch);
    return 0;
}

int consumer(void *arg)
{
    auto *b = static_cast<bench *>(arg);
    uint64_t v;
    while (corio_chan_recv(b->ch, &v, CORIO_FOREVER) == 1)
        b->sum += v;
    return 0;
}

/* A buffer of 64; an iteration is one value. */
void BM_chan_buffered(benchmark::State &state)
{
    run_chan_bench(state, 64, consumer, producer, 1);
}
BENCHMARK(BM_chan_buffered);

/* ---- mutex hand-off -------------------------------------------------------------------------- */

/* Lock, yield while holding it (the other one queues behind), unlock: hands it to the other. */
int mutex_timed(void *arg)
{
    auto *b = static_cast<bench *>(arg);
    for (auto _ : *b->state) {
        if (corio_mutex_lock(&b->mu, CORIO_FOREVER) != 0) {
            b->failed++;
            continue;
        }
        b->sum++;
        corio_yield();
        corio_mutex_unlock(&b->mu);
    }
    b->stop = true;
    return 0;
}

int mutex_partner(void *arg)
{
    auto *b = static_cast<bench *>(arg);
    while (!b->stop) {
        if (corio_mutex_lock(&b->mu, CORIO_FOREVER) != 0)
            break;
        b->sum++;
        corio_yield();
        corio_mutex_unlock(&b->mu);
    }
    return 0;
}

void BM_mutex_handoff(benchmark::State &state)
{
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    bench b{&state, nullptr, CORIO_MUTEX_INIT, false, 0, 0};
    stats_mark m(loop);
    corio_spawn(nullptr, loop, mutex_timed, &b);
    corio_spawn(nullptr, loop, mutex_partner, &b);
    run_loop(state, loop, &b.failed);
    /* Each iteration of the timed side is its own acquisition and the partner's, in turn. */
    state.SetItemsProcessed(state.iterations() * 2);
    state.counters["locks/item"] =
        benchmark::Counter(double(b.sum) / double(state.iterations() * 2));
    m.report(state, double(state.iterations() * 2));
    corio_loop_free(loop);
}
BENCHMARK(BM_mutex_handoff);

/* ---- generator resume + yield ---------------------------------------------------------------- */

int naturals(corio_gen *g, void *, void *)
{
    for (uintptr_t i = 0;; i++)
        if (corio_gen_yield(g, reinterpret_cast<void *>(i), nullptr) != 0)
            return 0;
}

int gen_driver(void *arg)
{
    auto *b = static_cast<bench *>(arg);
    corio_gen g;
    if (corio_gen_init(&g, naturals, nullptr) != 0) {
        b->failed++;
        for (auto _ : *b->state) {
        }
        return 0;
    }
    void *v = nullptr;
    for (auto _ : *b->state) {
        if (corio_gen_next(&g, &v, CORIO_FOREVER) != 1)
            b->failed++;
        b->sum += reinterpret_cast<uintptr_t>(v);
    }
    corio_gen_fini(&g);
    return 0;
}

void BM_gen_resume_yield(benchmark::State &state)
{
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    bench b{&state, nullptr, CORIO_MUTEX_INIT, false, 0, 0};
    stats_mark m(loop);
    corio_spawn(nullptr, loop, gen_driver, &b);
    run_loop(state, loop, &b.failed);
    benchmark::DoNotOptimize(b.sum);
    state.SetItemsProcessed(state.iterations());
    m.report(state, double(state.iterations()));
    corio_loop_free(loop);
}
BENCHMARK(BM_gen_resume_yield);

/* ---- summary --------------------------------------------------------------------------------- */

void summary()
{
    using namespace corio_bm;
    double ctx = median_ns("BM_ctx_switch");
    double pp = median_ns("BM_chan_pingpong"), buf = median_ns("BM_chan_buffered");
    double mu = median_ns("BM_mutex_handoff"), gen = median_ns("BM_gen_resume_yield");
    std::string why = skip_reason("BM_chan_pingpong");
    if (why.empty())
        why = skip_reason("BM_ctx_switch");
    ratio_line("chan_handoff / ctx_switch", pp / ctx, "<=", 3, "", why);
    printf("  (one context switch = one resume + yield pair, as in bm_ctx)\n");
    printf("  ns per item (CPU, median): ctx_switch %.2f, chan_handoff %.2f, chan_buffered %.2f, "
           "mutex_handoff %.2f, gen_resume_yield %.2f\n",
           ctx, pp, buf, mu, gen);
    printf("  in context switches: chan_handoff %.2f, chan_buffered %.3f, mutex_handoff %.2f "
           "(includes its yield), gen_resume_yield %.2f\n",
           pp / ctx, buf / ctx, mu / ctx, gen / ctx);
    printf("  stack switches per item: ctx_switch %.2f, chan_handoff %.2f, chan_buffered %.3f, "
           "mutex_handoff %.2f, gen_resume_yield %.2f\n",
           median_counter("BM_ctx_switch", "switch/item"),
           median_counter("BM_chan_pingpong", "switch/item"),
           median_counter("BM_chan_buffered", "switch/item"),
           median_counter("BM_mutex_handoff", "switch/item"),
           median_counter("BM_gen_resume_yield", "switch/item"));
    printf("  loop iterations per item: ctx_switch %.2f, chan_handoff %.2f, chan_buffered %.3f, "
           "mutex_handoff %.2f, gen_resume_yield %.2f\n",
           median_counter("BM_ctx_switch", "loopiter/item"),
           median_counter("BM_chan_pingpong", "loopiter/item"),
           median_counter("BM_chan_buffered", "loopiter/item"),
           median_counter("BM_mutex_handoff", "loopiter/item"),
           median_counter("BM_gen_resume_yield", "loopiter/item"));
    printf("  io_uring_enter per item: ctx_switch %.4f, chan_handoff %.4f, chan_buffered %.4f, "
           "mutex_handoff %.4f, gen_resume_yield %.4f\n",
           median_counter("BM_ctx_switch", "enter/item"),
           median_counter("BM_chan_pingpong", "enter/item"),
           median_counter("BM_chan_buffered", "enter/item"),
           median_counter("BM_mutex_handoff", "enter/item"),
           median_counter("BM_gen_resume_yield", "enter/item"));
}

} // namespace

int main(int argc, char **argv)
{
    return corio_bm::run_main(argc, argv, summary);
}

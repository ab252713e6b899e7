/* The whole operation path, with NOPs: corio_nop() preps an SQE, suspends the coroutine on its
 * future, the loop submits, reaps the CQE, resolves the future and resumes the coroutine. Against
 * a raw liburing loop at the same batch size, on a ring set up with the same best flags
 * (SINGLE_ISSUER | DEFER_TASKRUN, falling back as corio does) and a registered ring fd.
 *
 * One item is one NOP. Each benchmark iteration does kOps of them: corio with `batch` coroutines
 * in flight, each doing kOps / batch corio_nop() calls in a row (the spawns, 1 per 256 NOPs at
 * most, are part of the timed work); liburing by preparing `batch` NOPs,
 * io_uring_submit_and_wait(batch) and reaping them all, kOps / batch times.
 *
 * enter/op is the mission metric: corio's from corio_loop_stats()->enters; the raw loop counts its
 * own io_uring_enter calls (each io_uring_submit_and_wait() with wait_nr > 0 is exactly one in
 * liburing 2.3, and the CQEs are reaped with io_uring_for_each_cqe, which never enters).
 */
#include "bm_common.h"

#include <cstdio>
#include <cstring>
#include <liburing.h>
#include <string>

namespace
{

constexpr int kOps = 65536; /* NOPs per benchmark iteration: a multiple of every batch size */

/* ---- corio ---------------------------------------------------------------------------------- */

struct nop_job {
    int per_coro; /* corio_nop() calls each coroutine makes */
    int errors;   /* calls that did not return 0 */
};

int nop_worker(void *arg)
{
    auto *j = static_cast<nop_job *>(arg);
    for (int i = 0; i < j->per_coro; i++)
        j->errors += corio_nop() != 0;
    return 0;
}

/* Runs @batch coroutines doing job->per_coro NOPs each, to the end. Returns the failed spawns. */
int run_nops(corio_loop *loop, nop_job *job, int batch)
{
    return corio_bm::spawn_and_run(loop, batch, nop_worker, job);
}

void BM_op_nop_corio(benchmark::State &state)
{
    const int batch = int(state.range(0));
    corio_loop *loop = corio_bm::new_loop(state);
    if (!loop)
        return;
    nop_job warm{16, 0};
    run_nops(loop, &warm, batch); /* stacks and handle slots: setup, untimed */

    nop_job job{kOps / batch, 0};
    const struct corio_stats *s = corio_loop_stats(loop);
    uint64_t enters0 = s->enters;
    int failed = 0;
    for (auto _ : state)
        failed += run_nops(loop, &job, batch);
    double ops = double(state.iterations()) * kOps;
    if (failed || job.errors || warm.errors)
        state.SkipWithError("corio_spawn or corio_nop failed");
    state.SetItemsProcessed(int64_t(ops));
    state.counters["enter/op"] = double(s->enters - enters0) / ops;
    state.SetLabel(corio_loop_has(loop, CORIO_FEAT_DEFER_TASKRUN)  ? "defer_taskrun"
                   : corio_loop_has(loop, CORIO_FEAT_COOP_TASKRUN) ? "coop_taskrun"
                                                                   : "plain");
    corio_loop_free(loop);
}
BENCHMARK(BM_op_nop_corio)->Arg(1)->Arg(256);

/* ---- raw liburing ---------------------------------------------------------------------------- */

/* Sets up @ring as corio sets up its own: 256 SQEs, 1024 CQEs, the best task-run mode the kernel
 * takes, the ring fd registered. Returns 0 and the mode's name in *mode, or -errno. */
int raw_setup(io_uring *ring, const char **mode)
{
    static const struct {
        unsigned flags;
        const char *name;
    } modes[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "defer_taskrun"},
        {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "coop_taskrun"},
        {0, "plain"},
    };
    int err = -EINVAL;
    for (const auto &m : modes) {
        io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = m.flags | IORING_SETUP_CQSIZE;
        p.cq_entries = 1024;
        err = io_uring_queue_init_params(256, ring, &p);
        if (err == 0) {
            *mode = m.name;
            io_uring_register_ring_fd(ring); /* as corio does; optional */
            return 0;
        }
        if (err != -EINVAL)
            return err;
    }
    return err;
}

void BM_op_nop_liburing(benchmark::State &state)
{
    const int batch = int(state.range(0));
    io_uring ring;
    const char *mode = "";
    int err = raw_setup(&ring, &mode);
    if (err < 0) {
        fprintf(stderr, "io_uring_queue_init_params: %s\n", strerror(-err));
        state.SkipWithError("io_uring unavailable");
        return;
    }
    uint64_t enters = 0, sum = 0;
    bool bad = false;
    for (auto _ : state) {
        for (int done = 0; done < kOps; done += batch) {
            for (int i = 0; i < batch; i++) {
                io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data64(sqe, uint64_t(i) + 1);
            }
            int want = batch;
            io_uring_submit_and_wait(&ring, unsigned(want));
            enters++;
            for (;;) {
                io_uring_cqe *cqe;
                unsigned head, n = 0;
                io_uring_for_each_cqe(&ring, head, cqe)
                {
                    bad |= cqe->res != 0;
                    sum += cqe->user_data;
                    n++;
                }
                io_uring_cq_advance(&ring, n);
                want -= int(n);
                if (want <= 0)
                    break;
                io_uring_submit_and_wait(&ring, unsigned(want));
                enters++;
            }
        }
    }
    benchmark::DoNotOptimize(sum);
    double ops = double(state.iterations()) * kOps;
    if (bad)
        state.SkipWithError("a NOP failed");
    state.SetItemsProcessed(int64_t(ops));
    state.counters["enter/op"] = double(enters) / ops;
    state.SetLabel(mode);
    io_uring_queue_exit(&ring);
}
BENCHMARK(BM_op_nop_liburing)->Arg(1)->Arg(256);

void summary()
{
    using namespace corio_bm;
    for (int b : {1, 256}) {
        std::string c = "BM_op_nop_corio/" + std::to_string(b);
        std::string r = "BM_op_nop_liburing/" + std::to_string(b);
        std::string what = "op_nop_batch" + std::to_string(b) + "_vs_liburing";
        std::string why = skip_reason(c);
        if (why.empty())
            why = skip_reason(r);
        ratio_line(what.c_str(), median_ns(r) / median_ns(c), ">=", 0.7, "x", why);
    }
    ratio_line("op_enter_per_op_256", median_counter("BM_op_nop_corio/256", "enter/op"), "<=", 0.05,
               "", skip_reason("BM_op_nop_corio/256"));
    for (int b : {1, 256}) {
        std::string c = "BM_op_nop_corio/" + std::to_string(b);
        std::string r = "BM_op_nop_liburing/" + std::to_string(b);
        printf("  batch %3d, ns per NOP (CPU, median): corio %.1f (real %.1f), liburing %.1f "
               "(real %.1f); enter/op: corio %.4f, liburing %.4f\n",
               b, median_ns(c), median_ns(c, true), median_ns(r), median_ns(r, true),
               median_counter(c, "enter/op"), median_counter(r, "enter/op"));
    }
}

} // namespace

int main(int argc, char **argv)
{
    return corio_bm::run_main(argc, argv, summary);
}

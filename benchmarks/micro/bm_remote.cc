/* Messages between loops on two threads (corio_loop_post), against two plain threads that
 * ping-pong through eventfds in the same binary:
 *   BM_remote_pingpong_busy      round trip between two loops that are busy (a coroutine of each
 *                                yields in a loop): no system call, only the queues' cache lines
 *   BM_remote_pingpong_sleeping  round trip between two loops that sleep between messages: each
 *                                message wakes its loop with one eventfd write
 *   BM_eventfd_pingpong_threads  the baseline: two threads, each blocked in read(2) on its own
 *                                eventfd, woken by the other's write(2)
 *   BM_remote_oneway             one thread posts to a busy loop as fast as it can: messages/s
 * Target: busy round trip <= 1.0x the eventfd threads' (their median, same run); one-way >= 2
 * million messages per second. */
#include "bm_common.h"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <unistd.h>
#include <sys/eventfd.h>

namespace
{

/* The far side: a loop on its own thread, kept busy (a coroutine that yields until told to stop)
 * or left to sleep (a coroutine that waits on a semaphore released by the stop). */
struct far_loop {
    corio_loop *loop = nullptr;
    std::atomic<bool> ready{false};
    std::atomic<bool> stop{false};
    corio_sem quit;
    bool busy;
    std::thread th;

    static int spin(void *arg)
    {
        auto *f = static_cast<far_loop *>(arg);
        while (!f->stop.load(std::memory_order_relaxed))
            corio_yield();
        return 0;
    }

    static int idle(void *arg)
    {
        auto *f = static_cast<far_loop *>(arg);
        corio_sem_acquire(&f->quit, CORIO_FOREVER);
        return 0;
    }

    static void release_quit(void *arg)
    {
        auto *f = static_cast<far_loop *>(arg);
        f->stop.store(true);
        corio_sem_release(&f->quit);
    }

    explicit far_loop(bool busy_) : busy(busy_)
    {
        corio_sem_init(&quit, 0);
        th = std::thread([this] {
            corio_loop_opts o{};
            o.flags = CORIO_LOOP_REMOTE;
            if (corio_loop_new(&loop, &o) != 0) {
                ready.store(true);
                return;
            }
            corio_spawn(nullptr, loop, busy ? spin : idle, this);
            ready.store(true);
            corio_loop_run(loop);
            corio_loop_free(loop);
        });
        while (!ready.load())
            std::this_thread::yield();
    }

    ~far_loop()
    {
        if (loop)
            corio_loop_post(loop, release_quit, this);
        th.join();
    }
};

/* One round trip: this loop posts to the far one a function that posts back. */
struct pingpong {
    corio_loop *near_loop = nullptr;
    corio_loop *far = nullptr;
    long done = 0;       /* round trips completed (written on the near loop's thread) */
    corio_sem back;      /* released when one comes back (sleeping variant) */
    bool busy = false;
    benchmark::State *state = nullptr;
};

void came_back(void *arg)
{
    auto *p = static_cast<pingpong *>(arg);
    p->done++;
    if (!p->busy)
        corio_sem_release(&p->back);
}

void bounce(void *arg)
{
    auto *p = static_cast<pingpong *>(arg);
    corio_loop_post(p->near_loop, came_back, p);
}

int pinger(void *arg)
{
    auto *p = static_cast<pingpong *>(arg);
    for (auto _ : *p->state) {
        long want = p->done + 1;
        corio_loop_post(p->far, bounce, p);
        if (p->busy) {
            while (p->done < want)
                corio_yield();
        } else {
            corio_sem_acquire(&p->back, CORIO_FOREVER);
        }
    }
    return 0;
}

void run_pingpong(benchmark::State &state, bool busy)
{
    corio_loop_opts o{};
    o.flags = CORIO_LOOP_REMOTE;
    corio_loop *l = corio_bm::new_loop(state, &o);
    if (!l)
        return;
    far_loop far(busy);
    if (!far.loop) {
        state.SkipWithError("io_uring unavailable");
        corio_loop_free(l);
        return;
    }
    pingpong p;
    p.near_loop = l;
    p.far = far.loop;
    p.busy = busy;
    p.state = &state;
    corio_sem_init(&p.back, 0);
    uint64_t wakes0 = corio_loop_stats(l)->remote_wakes;
    corio_spawn(nullptr, l, pinger, &p);
    corio_loop_run(l);
    state.SetItemsProcessed(state.iterations());
    state.counters["wakes/trip"] = benchmark::Counter(
        double(corio_loop_stats(l)->remote_wakes - wakes0) / double(state.iterations()));
    corio_loop_free(l);
}

void BM_remote_pingpong_busy(benchmark::State &state)
{
    run_pingpong(state, true);
}
BENCHMARK(BM_remote_pingpong_busy)->UseRealTime();

void BM_remote_pingpong_sleeping(benchmark::State &state)
{
    run_pingpong(state, false);
}
BENCHMARK(BM_remote_pingpong_sleeping)->UseRealTime();

void BM_eventfd_pingpong_threads(benchmark::State &state)
{
    int to_far = eventfd(0, EFD_CLOEXEC), to_near = eventfd(0, EFD_CLOEXEC);
    std::thread far([&] {
        uint64_t v;
        while (read(to_far, &v, sizeof(v)) == sizeof(v) && v != UINT64_MAX - 1) {
            uint64_t one = 1;
            if (write(to_near, &one, sizeof(one)) != sizeof(one))
                break;
        }
    });
    uint64_t one = 1, v;
    for (auto _ : state) {
        if (write(to_far, &one, sizeof(one)) != sizeof(one) ||
            read(to_near, &v, sizeof(v)) != sizeof(v)) {
            state.SkipWithError("eventfd failed");
            break;
        }
    }
    uint64_t end = UINT64_MAX - 1;
    if (write(to_far, &end, sizeof(end)) != sizeof(end))
        perror("eventfd");
    far.join();
    close(to_far);
    close(to_near);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_eventfd_pingpong_threads)->UseRealTime();

std::atomic<long> oneway_ran{0};

void count_one(void *)
{
    oneway_ran.fetch_add(1, std::memory_order_relaxed);
}

void BM_remote_oneway(benchmark::State &state)
{
    far_loop far(true);
    if (!far.loop) {
        state.SkipWithError("io_uring unavailable");
        return;
    }
    oneway_ran.store(0);
    long sent = 0;
    for (auto _ : state) {
        /* Batches of 1,000, each post one message. */
        for (int i = 0; i < 1000; i++)
            sent += corio_loop_post(far.loop, count_one, nullptr) == 0;
    }
    while (oneway_ran.load() < sent)
        std::this_thread::yield();
    state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_remote_oneway)->UseRealTime();

void summary()
{
    using namespace corio_bm;
    double busy = median_ns("BM_remote_pingpong_busy", true);
    double sleeping = median_ns("BM_remote_pingpong_sleeping", true);
    double efd = median_ns("BM_eventfd_pingpong_threads", true);
    double one = median_ns("BM_remote_oneway", true);
    std::string why = skip_reason("BM_remote_pingpong_busy");
    ratio_line("remote_pingpong_busy / eventfd_threads", busy / efd, "<=", 1.0, "x", why);
    ratio_line("remote_oneway_msgs_per_s", 1e3 / one, ">=", 2.0, "M/s",
               skip_reason("BM_remote_oneway"));
    printf("  round trip ns (wall, median): loops busy %.0f, loops sleeping %.0f, eventfd "
           "threads %.0f; one-way ns per message %.1f\n",
           busy, sleeping, efd, one);
    printf("  eventfd wake-ups of the near loop per round trip: busy %.3f, sleeping %.3f\n",
           median_counter("BM_remote_pingpong_busy", "wakes/trip"),
           median_counter("BM_remote_pingpong_sleeping", "wakes/trip"));
}

} // namespace

int main(int argc, char **argv)
{
    return corio_bm::run_main(argc, argv, summary);
}

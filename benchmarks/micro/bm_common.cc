/* The shared main of the micro benchmarks, and their loop set-up.
 *
 * A machine shared with other work makes absolute times wander by tens of percent, so each binary
 * runs its corio benchmark and its baseline in the same process and reports their ratio. To keep
 * the two under the same conditions, the repetitions of all benchmarks are randomly interleaved
 * (--benchmark_enable_random_interleaving) and each figure is the median over the repetitions.
 * The defaults below apply unless the command line sets the flag itself.
 *
 * Time per item is CPU time of the benchmark thread (google-benchmark's default): it leaves out
 * the time the thread was preempted by other tenants, and with io_uring's DEFER_TASKRUN the
 * kernel's completion work runs in this thread, so it is counted. Real time is printed beside it.
 *
 * bm_common.h declares what the bm_<module>.cc files call and says what each call does.
 */
#include "bm_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

namespace corio_bm
{

namespace
{

/* One repetition of one benchmark instance. */
struct sample {
    double cpu_ns;  /* CPU ns per item */
    double real_ns; /* wall-clock ns per item */
    std::map<std::string, double> counters;
};

struct instance {
    std::vector<sample> reps;
    std::string error; /* set when it was skipped with an error */
};

std::map<std::string, instance> g_runs;
int g_fails;

/* "BM_op_nop_corio/256": the function name and the arguments, without /repeats: or
 * /min_time: decorations, so that the summaries do not depend on the flags. */
std::string key_of(const benchmark::BenchmarkReporter::Run &r)
{
    std::string k = r.run_name.function_name;
    if (!r.run_name.args.empty())
        k += "/" + r.run_name.args;
    return k;
}

class capture_reporter : public benchmark::ConsoleReporter
{
  public:
    explicit capture_reporter(OutputOptions o) : ConsoleReporter(o)
    {
    }

    void ReportRuns(const std::vector<Run> &runs) override
    {
        for (const Run &r : runs) {
            if (r.run_type != Run::RT_Iteration)
                continue;
            instance &in = g_runs[key_of(r)];
            if (r.error_occurred) {
                in.error = r.error_message;
                continue;
            }
            auto ips = r.counters.find("items_per_second");
            if (ips == r.counters.end() || ips->second.value <= 0)
                continue;
            /* items_per_second is items / CPU seconds (kIsRate is divided by CPU time). */
            double items = ips->second.value * r.cpu_accumulated_time;
            sample s;
            s.cpu_ns = 1e9 / ips->second.value;
            s.real_ns = r.real_accumulated_time * 1e9 / items;
            for (const auto &c : r.counters)
                s.counters[c.first] = c.second.value;
            in.reps.push_back(s);
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

double median(std::vector<double> v)
{
    if (v.empty())
        return NAN;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool has_flag(int argc, char **argv, const char *name)
{
    size_t len = strlen(name);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], name, len) == 0 && (argv[i][len] == '=' || argv[i][len] == '\0'))
            return true;
    return false;
}

} // namespace

double median_ns(const std::string &name, bool real)
{
    auto it = g_runs.find(name);
    if (it == g_runs.end())
        return NAN;
    std::vector<double> v;
    for (const sample &s : it->second.reps)
        v.push_back(real ? s.real_ns : s.cpu_ns);
    return median(v);
}

double median_counter(const std::string &name, const std::string &counter)
{
    auto it = g_runs.find(name);
    if (it == g_runs.end())
        return NAN;
    std::vector<double> v;
    for (const sample &s : it->second.reps) {
        auto c = s.counters.find(counter);
        if (c != s.counters.end())
            v.push_back(c->second);
    }
    return median(v);
}

std::string skip_reason(const std::string &name)
{
    auto it = g_runs.find(name);
    return it == g_runs.end() ? std::string() : it->second.error;
}

bool ratio_line(const char *what, double value, const char *op, double target, const char *unit,
                const std::string &why)
{
    char tgt[64];
    snprintf(tgt, sizeof(tgt), "%g%s", target, unit);
    if (!std::isfinite(value)) {
        printf("RATIO %s = n/a (target %s %s): SKIP (%s)\n", what, op, tgt,
               why.empty() ? "not run" : why.c_str());
        return true;
    }
    bool pass = strcmp(op, ">=") == 0 ? value >= target : value <= target;
    /* Ratios of times read well with 3 significant digits; syscalls per op need more. */
    if (unit[0])
        printf("RATIO %s = %.3g%s (target %s %s): %s\n", what, value, unit, op, tgt,
               pass ? "PASS" : "FAIL");
    else
        printf("RATIO %s = %.4f (target %s %s): %s\n", what, value, op, tgt,
               pass ? "PASS" : "FAIL");
    if (!pass)
        g_fails++;
    return pass;
}

int run_main(int argc, char **argv, void (*summary)())
{
    /* The summary's medians and targets come from every repetition, which these flags keep from
     * the reporter: refused, rather than a summary of nan. */
    for (const char *f : {"--benchmark_report_aggregates_only", "--benchmark_display_aggregates_only"})
        for (int i = 1; i < argc; i++)
            if (strncmp(argv[i], f, strlen(f)) == 0 && strstr(argv[i], "=false") == nullptr) {
                fprintf(stderr,
                        "%s: %s hides the repetitions that the medians and targets are taken "
                        "from; leave it out (the table shows the aggregates anyway)\n",
                        argv[0], argv[i]);
                return 2;
            }
    std::vector<char *> args(argv, argv + argc);
    static char interleave[] = "--benchmark_enable_random_interleaving=true";
    static char reps[] = "--benchmark_repetitions=5";
    static char min_time[] = "--benchmark_min_time=0.2";
    if (!has_flag(argc, argv, "--benchmark_enable_random_interleaving"))
        args.push_back(interleave);
    if (!has_flag(argc, argv, "--benchmark_repetitions"))
        args.push_back(reps);
    if (!has_flag(argc, argv, "--benchmark_min_time"))
        args.push_back(min_time);
    int n = (int)args.size();
    args.push_back(nullptr);

    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data()))
        return 1;
    capture_reporter rep(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                               : benchmark::ConsoleReporter::OO_Tabular);
    benchmark::RunSpecifiedBenchmarks(&rep);
    benchmark::Shutdown();
    fflush(stderr);
    printf("\n");
    summary();
    printf("(%s: medians of interleaved repetitions, CPU time per item; %d FAIL)\n", argv[0],
           g_fails);
    fflush(stdout);
    return 0;
}

corio_loop *new_loop(benchmark::State &state, const corio_loop_opts *opts)
{
    corio_loop *loop = nullptr;
    int err = corio_loop_new(&loop, opts);
    if (err < 0) {
        fprintf(stderr, "corio_loop_new: %s\n", strerror(-err));
        state.SkipWithError("io_uring unavailable");
        return nullptr;
    }
    return loop;
}

} // namespace corio_bm

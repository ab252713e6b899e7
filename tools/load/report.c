/*
 * What corio-load prints: the progress line each second, the summary at the end, and the same
 * figures as one line of JSON (--json), which benchmarks/run and the tests parse.
 */
#include "load.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *errno_name(int err)
{
    const char *s = strerrorname_np(err);
    return s ? s : "E?";
}

void load_progress_line(const struct totals *t, double el, double rate, bool warm)
{
    if (warm) {
        printf("[%6.1fs warm-up] %10.0f msg/s  conns %" PRIu64 "  errors %" PRIu64 "\n", el, rate,
               t->active, t->errors);
    } else {
        char p99[32] = "-";
        if (t->msgs)
            snprintf(p99, sizeof(p99), "%.1f us",
                     (double)load_hist_quantile(t->hist, t->msgs, 0.99) / 1e3);
        printf("[%6.1fs] %10.0f msg/s  p99 %12s  conns %" PRIu64 "  errors %" PRIu64 "\n", el, rate,
               p99, t->active, t->errors);
    }
    fflush(stdout);
}

static void print_errnos(FILE *f, const char *label, const uint64_t *slots)
{
    bool any = false;
    for (int e = 1; e < ERRNO_SLOTS; e++) {
        if (!slots[e])
            continue;
        fprintf(f, "%s%s x%" PRIu64, any ? ", " : label, errno_name(e), slots[e]);
        any = true;
    }
    if (any)
        fprintf(f, "\n");
}

void load_summary_print(const struct result *r)
{
    double rate = r->secs > 0 ? (double)r->t.msgs / r->secs : 0;
    double bps = r->secs > 0 ? (double)r->t.bytes / r->secs : 0;
    const char *unit = cfg.mode == MODE_ECHO ? "msg/s" : "req/s";
    if (cfg.mode == MODE_ECHO)
        printf(PROG ": echo %s:%d, %u connections, %zu B messages, pipeline %u, %u thread%s\n",
               cfg.host, cfg.port, cfg.conns, cfg.size, cfg.pipeline, cfg.threads,
               cfg.threads == 1 ? "" : "s");
    else
        printf(PROG ": http http://%s:%d%s, %u connections, pipeline %u, %u thread%s\n", cfg.host,
               cfg.port, cfg.path, cfg.conns, cfg.pipeline, cfg.threads,
               cfg.threads == 1 ? "" : "s");
    if (r->stop_signal)
        printf("  stopped by %s after %.2f s measured (of %.2f s)\n",
               sigabbrev_np(r->stop_signal) ? sigabbrev_np(r->stop_signal) : "a signal", r->secs,
               cfg.duration);
    printf("  measured     %.2f s after %.2f s warm-up\n", r->secs, cfg.warmup);
    printf("  %-12s %" PRIu64 "  (%.1f %s, %.2f MB/s)\n",
           cfg.mode == MODE_ECHO ? "messages" : "requests", r->t.msgs, rate, unit, bps / 1e6);
    printf("  latency      p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us  mean %.1f us\n",
           r->p50, r->p99, r->p999, r->max, r->mean);
    printf("  connections  %" PRIu64 " of %u connected", r->connected, cfg.conns);
    if (r->connected + r->connect_failed < cfg.conns)
        printf(", %" PRIu64 " still connecting at the stop",
               cfg.conns - r->connected - r->connect_failed);
    if (r->reconnects)
        printf(", %" PRIu64 " reconnects", r->reconnects);
    printf("\n");
    print_errnos(stdout, "  connect failed: ", r->connect_errno);
    print_errnos(stdout, "  connections lost: ", r->io_errno);
    if (r->closed_by_peer)
        printf("  connections closed by the server: %" PRIu64 "\n", r->closed_by_peer);
    if (r->desync)
        printf("  connections closed after bad data: %" PRIu64 "\n", r->desync);
    if (cfg.mode == MODE_HTTP) {
        printf("  status      ");
        for (int k = 100; k < 600; k++)
            if (r->status[k])
                printf(" %d x%" PRIu64, k, r->status[k]);
        printf("\n");
    }
    printf("  errors       %" PRIu64 " (verify errors %" PRIu64 ")\n", r->t.errors,
           r->t.verify_errors);
    if (r->server_cpu >= 0)
        printf("  server CPU   %.3f s, %.2f us per message\n", r->server_cpu,
               r->t.msgs ? r->server_cpu * 1e6 / (double)r->t.msgs : 0.0);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_errnos(FILE *f, const uint64_t *slots)
{
    fprintf(f, "{");
    bool any = false;
    for (int e = 1; e < ERRNO_SLOTS; e++) {
        if (!slots[e])
            continue;
        fprintf(f, "%s\"%s\": %" PRIu64, any ? ", " : "", errno_name(e), slots[e]);
        any = true;
    }
    fprintf(f, "}");
}

int load_json_write(const struct result *r)
{
    bool to_stdout = strcmp(cfg.json, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(cfg.json, "w");
    if (!f) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", cfg.json, strerror(errno));
        return -1;
    }
    double rate = r->secs > 0 ? (double)r->t.msgs / r->secs : 0;
    double bps = r->secs > 0 ? (double)r->t.bytes / r->secs : 0;
    fprintf(f, "{\"mode\": \"%s\", ", cfg.mode == MODE_ECHO ? "echo" : "http");
    fprintf(f, "\"host\": ");
    json_string(f, cfg.host);
    fprintf(f, ", \"port\": %d, ", cfg.port);
    if (cfg.mode == MODE_HTTP) {
        fprintf(f, "\"path\": ");
        json_string(f, cfg.path);
        fprintf(f, ", ");
    }
    fprintf(f,
            "\"connections\": %u, \"size\": %zu, \"pipeline\": %u, \"threads\": %u, "
            "\"warmup_s\": %.3f, \"duration_s\": %.3f, \"messages\": %" PRIu64 ", "
            "\"msgs_per_s\": %.1f, \"bytes_per_s\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f, "
            "\"p999_us\": %.2f, \"max_us\": %.2f, \"mean_us\": %.2f, \"errors\": %" PRIu64 ", "
            "\"verify_errors\": %" PRIu64 ", \"connected\": %" PRIu64
            ", \"connect_failed\": %" PRIu64 ", \"reconnects\": %" PRIu64
            ", \"closed_by_server\": %" PRIu64 ", ",
            cfg.conns, cfg.mode == MODE_ECHO ? cfg.size : 0, cfg.pipeline, cfg.threads, cfg.warmup,
            r->secs, r->t.msgs, rate, bps, r->p50, r->p99, r->p999, r->max, r->mean, r->t.errors,
            r->t.verify_errors, r->connected, r->connect_failed, r->reconnects, r->closed_by_peer);
    fprintf(f, "\"connect_errors\": ");
    json_errnos(f, r->connect_errno);
    fprintf(f, ", \"io_errors\": ");
    json_errnos(f, r->io_errno);
    if (cfg.mode == MODE_HTTP) {
        fprintf(f, ", \"status\": {");
        bool any = false;
        for (int k = 100; k < 600; k++) {
            if (!r->status[k])
                continue;
            fprintf(f, "%s\"%d\": %" PRIu64, any ? ", " : "", k, r->status[k]);
            any = true;
        }
        fprintf(f, "}");
    }
    if (r->server_cpu >= 0)
        fprintf(f, ", \"server_pid\": %ld, \"server_cpu_s\": %.3f, \"server_cpu_us_per_msg\": %.4f",
                cfg.server_pid, r->server_cpu,
                r->t.msgs ? r->server_cpu * 1e6 / (double)r->t.msgs : 0.0);
    fprintf(f, ", \"stopped_by_signal\": %s}\n", r->stop_signal ? "true" : "false");
    int err = fflush(f) != 0 || ferror(f) ? -1 : 0;
    if (!to_stdout && fclose(f) != 0)
        err = -1;
    if (err)
        fprintf(stderr, PROG ": cannot write %s\n", cfg.json);
    return err;
}

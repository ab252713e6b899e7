/*
 * corio-load's command line: the options, their checks, and the configuration they fill.
 */
#include "load.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct config cfg = {
    .mode = MODE_ECHO,
    .host = "127.0.0.1",
    .port = -1,
    .conns = 64,
    .size = 64,
    .pipeline = 1,
    .duration = 10,
    .warmup = 1,
    .path = "/",
    .threads = 1,
    .expect_body = -1,
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: " PROG " [options]\n"
        "Drives a TCP echo server or an HTTP/1.1 server and measures it.\n"
        "  --mode echo|http      what to drive (default echo)\n"
        "  --host ADDR           numeric IPv4/IPv6 address of the server (default 127.0.0.1)\n"
        "  --port N              its port (default 7000 for echo, 8080 for http)\n"
        "  -c, --connections N   connections (default 64)\n"
        "  -s, --size BYTES      echo message size, k/m suffix allowed (default 64)\n"
        "  -p, --pipeline N      messages or requests in flight per connection (default 1)\n"
        "  -d, --duration SECS   measured time, fractions allowed (default 10)\n"
        "  -w, --warmup SECS     time before measuring, not counted (default 1)\n"
        "      --path PATH       http: the path to GET (default /)\n"
        "      --expect-body N   http: a 2xx response's body must be N bytes\n"
        "      --json FILE       write the summary as JSON to FILE (- for stdout)\n"
        "      --threads N       loops, one per thread, connections split among them "
        "(default 1)\n"
        "      --cpu LIST        pin thread i to the i-th CPU of LIST (0,2 or 0-3)\n"
        "      --server-pid PID  report the server's CPU time per message from "
        "/proc/PID/stat\n"
        "  -q, --quiet           no progress and no summary on stdout\n"
        "      --stats           print each loop's counters (SQEs, enters, CQEs, ...) at the end\n"
        "  -h, --help            this text\n"
        "Echo mode checks every byte that comes back; HTTP mode checks each response's framing\n"
        "(chunked responses are refused) and counts 4xx/5xx responses as errors. Messages,\n"
        "status codes and latencies count in the measured window, errors over the whole run.\n"
        "A progress line is printed each second when stdout is a terminal. SIGINT/SIGTERM stop\n"
        "the run and print what was measured so far.\n"
        "Exit status: 0 success, 1 verify errors or no message completed, 2 bad usage.\n");
}

/* Prints "@what '@arg'" and exits with status 2. */
static void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, PROG ": %s '%s'\nTry '" PROG " --help'.\n", what, arg);
    exit(2);
}

static unsigned long long parse_uint(const char *opt, const char *s, unsigned long long lo,
                                     unsigned long long hi, bool suffix)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        bad_usage("bad number", s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        bad_usage("number out of range:", s);
    if (suffix && *end) {
        unsigned shift = 0;
        switch (*end) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            bad_usage("bad size", s);
        }
        if (v > (ULLONG_MAX >> shift))
            bad_usage("number out of range:", s);
        v <<= shift;
        end++;
    }
    if (*end)
        bad_usage("bad number", s);
    if (v < lo || v > hi) {
        fprintf(stderr, PROG ": %s must be between %llu and %llu\nTry '" PROG " --help'.\n", opt,
                lo, hi);
        exit(2);
    }
    return v;
}

static double parse_secs(const char *s, bool zero_ok)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || (!zero_ok && v == 0) || v > 1e6)
        bad_usage("bad number of seconds", s);
    return v;
}

static void parse_cpus(const char *s)
{
    const char *p = s;
    while (*p) {
        char *end;
        if (!isdigit((unsigned char)*p))
            bad_usage("bad CPU list", s);
        long a = strtol(p, &end, 10), b = a;
        if (*end == '-') {
            if (!isdigit((unsigned char)end[1]))
                bad_usage("bad CPU list", s);
            b = strtol(end + 1, &end, 10);
        }
        if (a < 0 || b < a || b >= CPU_SETSIZE)
            bad_usage("bad CPU list", s);
        for (long i = a; i <= b; i++) {
            if (cfg.ncpus == CPU_SETSIZE)
                bad_usage("bad CPU list", s);
            cfg.cpus[cfg.ncpus++] = (int)i;
        }
        if (*end == ',')
            end++;
        else if (*end)
            bad_usage("bad CPU list", s);
        p = end;
    }
    if (cfg.ncpus == 0)
        bad_usage("bad CPU list", s);
}

enum {
    OPT_MODE = 256,
    OPT_HOST,
    OPT_PORT,
    OPT_PATH,
    OPT_JSON,
    OPT_THREADS,
    OPT_CPU,
    OPT_PID,
    OPT_EXPECT,
    OPT_STATS
};

static const struct option longopts[] = {
    {"mode", required_argument, NULL, OPT_MODE},
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"connections", required_argument, NULL, 'c'},
    {"size", required_argument, NULL, 's'},
    {"pipeline", required_argument, NULL, 'p'},
    {"duration", required_argument, NULL, 'd'},
    {"warmup", required_argument, NULL, 'w'},
    {"path", required_argument, NULL, OPT_PATH},
    {"json", required_argument, NULL, OPT_JSON},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"cpu", required_argument, NULL, OPT_CPU},
    {"server-pid", required_argument, NULL, OPT_PID},
    {"expect-body", required_argument, NULL, OPT_EXPECT},
    {"quiet", no_argument, NULL, 'q'},
    {"stats", no_argument, NULL, OPT_STATS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Takes option @ch (getopt_long's answer, with optarg) into cfg; @argv names a bad option. */
static void apply_option(int ch, char **argv)
{
    switch (ch) {
    case OPT_MODE:
        if (strcmp(optarg, "echo") == 0)
            cfg.mode = MODE_ECHO;
        else if (strcmp(optarg, "http") == 0)
            cfg.mode = MODE_HTTP;
        else
            bad_usage("unknown mode (echo or http):", optarg);
        break;
    case OPT_HOST:
        cfg.host = optarg;
        break;
    case OPT_PORT:
        cfg.port = (int)parse_uint("--port", optarg, 1, 65535, false);
        break;
    case 'c':
        cfg.conns = (unsigned)parse_uint("--connections", optarg, 1, MAX_CONNS, false);
        break;
    case 's':
        cfg.size = (size_t)parse_uint("--size", optarg, 1, MAX_SIZE, true);
        break;
    case 'p':
        cfg.pipeline = (unsigned)parse_uint("--pipeline", optarg, 1, MAX_PIPELINE, false);
        break;
    case 'd':
        cfg.duration = parse_secs(optarg, false);
        break;
    case 'w':
        cfg.warmup = parse_secs(optarg, true);
        break;
    case OPT_PATH:
        if (optarg[0] != '/' || strpbrk(optarg, " \r\n\t"))
            bad_usage("--path must start with / and hold no spaces:", optarg);
        cfg.path = optarg;
        break;
    case OPT_JSON:
        cfg.json = optarg;
        break;
    case OPT_THREADS:
        cfg.threads = (unsigned)parse_uint("--threads", optarg, 1, MAX_THREADS, false);
        break;
    case OPT_CPU:
        parse_cpus(optarg);
        break;
    case OPT_PID:
        cfg.server_pid = (long)parse_uint("--server-pid", optarg, 1, INT_MAX, false);
        break;
    case OPT_EXPECT:
        cfg.expect_body = (long long)parse_uint("--expect-body", optarg, 0, LLONG_MAX, false);
        break;
    case OPT_STATS:
        cfg.stats = true;
        break;
    case 'q':
        cfg.quiet = true;
        break;
    case 'h':
        usage(stdout);
        exit(0);
    case ':':
        bad_usage("this option needs a value:", argv[optind - 1]);
        break;
    default:
        bad_usage("unknown option", argv[optind - 1]);
        break;
    }
}

void load_parse_options(int argc, char **argv)
{
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:s:p:d:w:qh", longopts, NULL)) != -1)
        apply_option(ch, argv);
    if (optind < argc)
        bad_usage("unexpected argument", argv[optind]);
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, cfg.host, addr) != 1 && inet_pton(AF_INET6, cfg.host, addr) != 1)
        bad_usage("--host must be a numeric IPv4 or IPv6 address:", cfg.host);
    if (cfg.port < 0)
        cfg.port = cfg.mode == MODE_ECHO ? 7000 : 8080;
    if (cfg.threads > cfg.conns)
        cfg.threads = cfg.conns;
    cfg.paired = cfg.pipeline > 1 || (cfg.mode == MODE_ECHO && cfg.size > SINGLE_MAX);
}

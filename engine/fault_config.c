/* The fault seam's configuration: a spec parsed into struct cfg (by a table of keys), the
 * CORIO_FAULTS environment variable, fuzzers' scripts, and the counters. Compiled to nothing
 * unless CORIO_TESTING is defined (see fault.h).
 */
#include "fault_private.h"

#ifdef CORIO_TESTING

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Thread_local struct fault_thread corio__fault_t;

/* ---- configuration -------------------------------------------------------------------------- */

static bool parse_prob(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= 0 && d <= 1))
        return false;
    *out = d;
    return true;
}

static bool parse_uint(const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long u = strtoull(v, &end, 0);
    if (end == v || *end || *v == '-' || u > max)
        return false;
    *out = u;
    return true;
}

/* Parses "name|name" into CORIO_FEAT_ bits within [lo, hi]. */
static bool parse_feats(char *v, int lo, int hi, uint64_t *out)
{
    uint64_t bits = 0;
    char *save = NULL;
    for (char *name = strtok_r(v, "|", &save); name; name = strtok_r(NULL, "|", &save)) {
        int f = lo;
        while (f <= hi && strcmp(corio_feature_name((enum corio_feature)f), name) != 0)
            f++;
        if (f > hi)
            return false;
        bits |= 1ull << f;
    }
    *out = bits;
    return true;
}

/* The probability keys, each a double of struct cfg. */
static const struct {
    const char *key;
    size_t off;
} probs[] = {
    {"enter_eintr", offsetof(struct cfg, enter_eintr)},
    {"enter_eagain", offsetof(struct cfg, enter_eagain)},
    {"enter_ebusy", offsetof(struct cfg, enter_ebusy)},
    {"short_rw", offsetof(struct cfg, short_rw)},
    {"cqe_eagain", offsetof(struct cfg, cqe_eagain)},
    {"cqe_econnreset", offsetof(struct cfg, cqe_econnreset)},
    {"cqe_enobufs", offsetof(struct cfg, cqe_enobufs)},
    {"sq_full", offsetof(struct cfg, sq_full)},
    {"reorder", offsetof(struct cfg, reorder)},
    {"holdback", offsetof(struct cfg, holdback)},
};

/* The short names of the user's grammar (README.md, "Testing a server built on corio"), each
 * another spelling of a key above. */
static const struct {
    const char *alias;
    const char *key;
} aliases[] = {
    {"short", "short_rw"},      {"eagain", "cqe_eagain"}, {"reset", "cqe_econnreset"},
    {"enobufs", "cqe_enobufs"}, {"eintr", "enter_eintr"}, {"ebusy", "enter_ebusy"},
};

/* Applies one key=value of a spec to @c. Returns whether both were valid. */
static bool apply(struct cfg *c, const char *k, char *v)
{
    uint64_t u;
    bool ok;
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(aliases); i++)
        if (strcmp(k, aliases[i].alias) == 0)
            k = aliases[i].key;
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(probs); i++)
        if (strcmp(k, probs[i].key) == 0)
            return parse_prob(v, (double *)(void *)((char *)c + probs[i].off));
    if (strcmp(k, "seed") == 0) {
        c->seeded = true;
        return parse_uint(v, UINT64_MAX, &c->seed);
    }
    if (strcmp(k, "sq") == 0 || strcmp(k, "cq") == 0) {
        ok = parse_uint(v, k[0] == 's' ? 32768 : 65536, &u) && u > 0;
        *(k[0] == 's' ? &c->sq : &c->cq) = (unsigned)u;
        return ok;
    }
    if (strcmp(k, "refuse_setup") == 0)
        return parse_feats(v, CORIO_FEAT_SINGLE_ISSUER, CORIO_FEAT_CQSIZE, &c->refuse_setup);
    if (strcmp(k, "refuse_op") == 0 || strcmp(k, "hide_op") == 0) {
        ok = parse_feats(v, CORIO_FEAT_NOP, CORIO_FEAT_WRITE_FIXED, &u);
        c->refuse_op |= u;
        if (k[0] == 'h')
            c->hide_op |= u;
        return ok;
    }
    if (strcmp(k, "ops") == 0) {
        ok = parse_feats(v, CORIO_FEAT_NOP, CORIO_FEAT_WRITE_FIXED, &u);
        c->ops |= u;
        return ok && u;
    }
    if (strcmp(k, "hide_feat") == 0) {
        ok = parse_feats(v, CORIO_FEAT_EXT_ARG, CORIO_FEAT_EXT_ARG, &u);
        c->hide_feat |= u;
        return ok;
    }
    if (strcmp(k, "refuse_op_err") == 0) {
        c->refuse_err = strcmp(v, "einval") == 0 ? -EINVAL : -EOPNOTSUPP;
        return strcmp(v, "einval") == 0 || strcmp(v, "eopnotsupp") == 0;
    }
    if (strcmp(k, "quiet") == 0) {
        ok = parse_uint(v, 1, &u);
        c->quiet = u;
        return ok;
    }
    return false;
}

static int parse(const char *spec, struct cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->refuse_err = -EINVAL;
    if (!spec)
        spec = "";
    if (strlen(spec) >= sizeof(c->spec))
        return -EINVAL;
    strcpy(c->spec, spec);
    char buf[sizeof(c->spec)];
    strcpy(buf, spec);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ", ", &save); kv; kv = strtok_r(NULL, ", ", &save)) {
        char *v = strchr(kv, '=');
        if (!v)
            return -EINVAL;
        *v++ = '\0';
        if (!apply(c, kv, v))
            return -EINVAL;
    }
    if (!c->seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        c->seed =
            ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
    }
    bool p = false;
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(probs); i++)
        p |= *(const double *)(const void *)((const char *)c + probs[i].off) > 0;
    c->any = p || c->sq || c->cq || c->refuse_setup || c->refuse_op || c->hide_feat;
    return 0;
}

/* ---- the seed again, when the process fails --------------------------------------------------
 * A CI log shows the seed where the faults began; a failure far below it is easier to replay when
 * the line that replays it is the last one. The process-wide copy is of the latest configuration
 * with faults (each thread has its own, but a seed given in the spec is every thread's). */

static pthread_mutex_t replay_lock = PTHREAD_MUTEX_INITIALIZER;
static char replay[sizeof(((struct cfg *)0)->spec) + 32]; /* "seed=S,spec", or "" */
static bool replay_hooked;

static void print_replay(void)
{
    pthread_mutex_lock(&replay_lock);
    if (replay[0])
        fprintf(stderr, "corio faults: to replay: CORIO_FAULTS='%s'\n", replay);
    pthread_mutex_unlock(&replay_lock);
}

/* on_exit's handler: only a failure needs the replay line. */
static void exit_replay(int status, void *arg)
{
    (void)arg;
    if (status != 0)
        print_replay();
}

/* Remembers how to replay @c and makes sure that an exit with an error status, or a panic of the
 * engine, prints it. */
static void remember(const struct cfg *c)
{
    pthread_mutex_lock(&replay_lock);
    if (c->seeded)
        snprintf(replay, sizeof(replay), "%s", c->spec);
    else
        snprintf(replay, sizeof(replay), "seed=%llu%s%s", (unsigned long long)c->seed,
                 c->spec[0] ? "," : "", c->spec);
    bool hook = !replay_hooked;
    replay_hooked = true;
    pthread_mutex_unlock(&replay_lock);
    if (hook) {
        on_exit(exit_replay, NULL);
        corio__panic_hook = print_replay;
    }
}

int corio__fault_configure(const char *spec)
{
    struct cfg c;
    int err = parse(spec, &c);
    if (err)
        return err;
    T.init = true;
    T.cfg = c;
    T.rng = c.seed;
    memset(&T.stats, 0, sizeof(T.stats));
    if (c.any && !c.quiet) {
        fprintf(stderr, "corio faults: seed=%llu spec=%s\n", (unsigned long long)c.seed, c.spec);
        remember(&c);
    }
    return 0;
}

/* The first hook of a thread reads CORIO_FAULTS, unless corio__fault_configure came first. */
void corio__fault_ensure(void)
{
    if (T.init)
        return;
    T.init = true;
    const char *env = getenv("CORIO_FAULTS");
    if (env && corio__fault_configure(env) != 0)
        corio__panic("CORIO_FAULTS: bad fault spec \"%s\" (see engine/fault.h)", env);
}

void corio__fault_script(const uint8_t *data, size_t len)
{
    T.script = data;
    T.script_len = data ? len : 0;
    T.script_pos = 0;
}

const struct corio__fault_stats *corio__fault_stats(void)
{
    return &T.stats;
}

#else

/* ISO C wants a translation unit to declare something. */
typedef int corio__fault_config_disabled;

#endif

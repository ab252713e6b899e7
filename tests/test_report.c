/* The capability report (corio_report) and the seccomp profiles: refusals forced through the
 * fault seam (a setup flag, an op the kernel lacks) and by a seccomp filter (io_uring itself)
 * show up with their reasons; the limits are checked against what they bite; the JSON is well
 * formed. The profiles themselves are checked by running the tools under them
 * (seccomp_profile.sh). */
#include "helpers.h"

#include "fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The report, in memory the test frees. */
static char *report(uint64_t max_conns, unsigned flags)
{
    ssize_t n = corio_report(NULL, 0, NULL, max_conns, flags);
    assert_true(n > 0);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    /* The second report may differ in a number's width (a limit, say): measured again. */
    ssize_t m = corio_report(buf, (size_t)n + 1, NULL, max_conns, flags);
    assert_true(m > 0 && m <= n);
    assert_int_equal(strlen(buf), (size_t)m);
    return buf;
}

/* Well-formed JSON as far as structure goes: strings closed, brackets balanced and matched. */
static void assert_json(const char *s)
{
    char stack[64];
    int depth = 0;
    bool in_str = false;
    for (; *s; s++) {
        if (in_str) {
            if (*s == '\\')
                s++;
            else if (*s == '"')
                in_str = false;
            else
                assert_true((unsigned char)*s >= 0x20);
            continue;
        }
        if (*s == '"') {
            in_str = true;
        } else if (*s == '{' || *s == '[') {
            assert_true(depth < 64);
            stack[depth++] = *s == '{' ? '}' : ']';
        } else if (*s == '}' || *s == ']') {
            assert_true(depth > 0);
            assert_int_equal(stack[--depth], *s);
        }
    }
    assert_false(in_str);
    assert_int_equal(depth, 0);
}

/* The object of the list entry named @name in section @section (its text up to its '}'), copied
 * into @out. */
static void entry(const char *json, const char *section, const char *name, char *out, size_t len)
{
    char key[64], nm[64];
    snprintf(key, sizeof(key), "\"%s\":[", section);
    snprintf(nm, sizeof(nm), "{\"name\":\"%s\"", name);
    const char *sec = strstr(json, key);
    assert_non_null(sec);
    const char *e = strstr(sec, nm);
    assert_non_null(e);
    size_t n = strcspn(e, "}");
    assert_true(n < len);
    memcpy(out, e, n);
    out[n] = '\0';
}

static void test_report_default(void **state)
{
    (void)state;
    char *r = report(0, 0);
    print_message("  %zu bytes\n", strlen(r));
    assert_json(r);
    assert_non_null(strstr(r, "\"kernel\":{\"release\":\""));
    assert_non_null(strstr(r, t_on_epoll() ? "\"backend\":{\"name\":\"epoll\""
                                           : "\"backend\":{\"name\":\"io_uring\",\"reason\":\"\""));
    assert_non_null(strstr(r, "\"io_uring\":{\"available\":true"));
    char e[256];
    entry(r, "ops", "recv", e, sizeof(e));
    assert_string_equal(e, "{\"name\":\"recv\",\"present\":true,\"needed\":true");
    entry(r, "ops", "send_zc", e, sizeof(e));
    assert_non_null(strstr(e, "\"needed\":false"));
    entry(r, "setup_flags", "single_issuer", e, sizeof(e));
    assert_non_null(strstr(e, "\"asked\":true"));
    entry(r, "setup_flags", "sqpoll", e, sizeof(e));
    assert_non_null(strstr(e, "\"asked\":false,\"granted\":false,\"refused\":\"\""));
    assert_non_null(strstr(r, "\"kernel.io_uring_disabled\":"));
    assert_non_null(strstr(r, "\"kernel.io_uring_group\":"));
    assert_null(strstr(r, "profile_io_uring"));
    assert_int_equal(corio_report(NULL, 0, NULL, 0, 0x80), -EINVAL);
    free(r);
}

/* A setup flag the kernel refuses (the seam answers EINVAL, as a kernel without it does): asked
 * for, not granted, and why; the flag corio steps down to is granted instead. */
static void test_report_refused_setup_flag(void **state)
{
    (void)state;
    assert_int_equal(corio__fault_configure("refuse_setup=defer_taskrun"), 0);
    char *r = report(0, 0);
    assert_int_equal(corio__fault_configure(""), 0);
    assert_json(r);
    char e[512];
    entry(r, "setup_flags", "defer_taskrun", e, sizeof(e));
    print_message("  %s}\n", e);
    assert_non_null(strstr(e, "\"asked\":true,\"granted\":false"));
    assert_non_null(strstr(e, "\"refused\":\"io_uring_setup refused the flags with EINVAL"));
    entry(r, "setup_flags", "coop_taskrun", e, sizeof(e));
    assert_non_null(strstr(e, "\"asked\":true,\"granted\":true,\"refused\":\"\""));
    free(r);
}

/* Ops the kernel lacks (the seam hides them from the probe): an optional one is absent and the
 * loop stays on io_uring; a needed one sends the default loop to epoll, and the reason names it. */
static void test_report_missing_ops(void **state)
{
    (void)state;
    assert_int_equal(corio__fault_configure("hide_op=send_zc"), 0);
    char *r = report(0, 0);
    char e[256];
    entry(r, "ops", "send_zc", e, sizeof(e));
    assert_string_equal(e, "{\"name\":\"send_zc\",\"present\":false,\"needed\":false");
    free(r);
    assert_int_equal(corio__fault_configure("hide_op=recv"), 0);
    r = report(0, 0);
    assert_int_equal(corio__fault_configure(""), 0);
    assert_json(r);
    entry(r, "ops", "recv", e, sizeof(e));
    assert_string_equal(e, "{\"name\":\"recv\",\"present\":false,\"needed\":true");
    assert_non_null(strstr(r, "\"io_uring\":{\"available\":false,\"error\":\"io_uring lacks "
                              "IORING_OP_recv"));
    /* The default loop's choice, unless the environment made it (forced either way). */
    const char *env = getenv("CORIO_BACKEND");
    if (!env || strcmp(env, "auto") == 0)
        assert_non_null(strstr(r, "\"backend\":{\"name\":\"epoll\",\"reason\":\"io_uring lacks "
                                  "IORING_OP_recv"));
    free(r);
}

/* io_uring refused by a seccomp filter, as in a container: the report runs (in a child, which
 * the filter cannot be taken off) and says epoll, and why. */
static void refused_child(int err, int out)
{
    if (t_refuse_uring(err) != 0)
        _exit(3);
    unsetenv("CORIO_BACKEND"); /* the filter alone must choose epoll */
    ssize_t n = corio_report(NULL, 0, NULL, 0, 0);
    char *buf = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf)
        _exit(5);
    n = corio_report(buf, (size_t)n + 1, NULL, 0, 0);
    if (write(out, buf, (size_t)n) != n)
        _exit(6);
    _exit(0);
}

static void test_report_uring_refused(void **state)
{
    (void)state;
    char buf[16384];
    t_fork_report(refused_child, EPERM, buf, sizeof(buf));
    assert_json(buf);
    assert_non_null(strstr(buf, "\"backend\":{\"name\":\"epoll\",\"reason\":\"io_uring_setup "
                                "failed with EPERM"));
    assert_non_null(strstr(buf, "\"io_uring\":{\"available\":false,\"error\":\"io_uring_setup "
                                "failed with EPERM"));
    assert_non_null(strstr(buf, "\"errno\":1"));
    assert_non_null(strstr(buf, "\"seccomp\":{\"mode\":2"));
    assert_null(strstr(buf, "\"setup_flags\""));
}

/* RLIMIT_NOFILE against the connections a program means to hold. */
static void test_report_nofile(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur < 32)
        skip();
    char *r = report(rl.rlim_cur - 16, 0);
    assert_non_null(strstr(r, "\"needed\":"));
    char want[128];
    snprintf(want, sizeof(want), "\"max_conns\":%llu,\"needed\":%llu,\"ok\":true",
             (unsigned long long)rl.rlim_cur - 16, (unsigned long long)rl.rlim_cur);
    assert_non_null(strstr(r, want));
    free(r);
    r = report(rl.rlim_cur, 0);
    assert_non_null(strstr(r, "\"ok\":false}}"));
    free(r);
}

/* The seccomp profiles: io_uring's lists io_uring_setup and none of epoll's calls; epoll's the
 * reverse; AUTO both; in the report on request. */
static void test_report_seccomp_profiles(void **state)
{
    (void)state;
    char buf[8192];
    ssize_t n = corio_seccomp_profile(buf, sizeof(buf), CORIO_BACKEND_IO_URING);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    assert_json(buf);
    assert_true(strncmp(buf, "{\"defaultAction\":\"SCMP_ACT_ERRNO\"", 33) == 0);
    assert_non_null(strstr(buf, "\"io_uring_setup\""));
    assert_null(strstr(buf, "\"epoll_ctl\""));
    n = corio_seccomp_profile(buf, sizeof(buf), CORIO_BACKEND_EPOLL);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    assert_non_null(strstr(buf, "\"epoll_ctl\""));
    assert_null(strstr(buf, "\"io_uring_setup\""));
    n = corio_seccomp_profile(buf, sizeof(buf), CORIO_BACKEND_AUTO);
    assert_non_null(strstr(buf, "\"epoll_ctl\""));
    assert_non_null(strstr(buf, "\"io_uring_enter\""));
    assert_int_equal(corio_seccomp_profile(buf, sizeof(buf), (enum corio_backend)7), -EINVAL);
    char *r = report(0, CORIO_REPORT_SECCOMP);
    assert_json(r);
    assert_non_null(strstr(r, "\"profile_io_uring\":{\"defaultAction\""));
    assert_non_null(strstr(r, "\"profile_epoll\":{\"defaultAction\""));
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_default),     cmocka_unit_test(test_report_refused_setup_flag),
        cmocka_unit_test(test_report_missing_ops), cmocka_unit_test(test_report_uring_refused),
        cmocka_unit_test(test_report_nofile),      cmocka_unit_test(test_report_seccomp_profiles),
    };
    return T_RUN_TESTS(tests);
}

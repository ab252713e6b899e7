/* The installed headers compile as C++ (g++ -std=c++17 -Wall -Wextra -Werror): a C++ program that
 * includes corio/corio.h and corio/http.h, links libcorio_http and libcorio, and in a coroutine
 * started by corio_run does a corio_nop, parses a POST head and looks up a reason phrase. Prints
 * "corio <version>: C++ ok" and exits 0 on success, 77 when io_uring is unavailable here, and 1 on
 * any failure. */
#include <corio/corio.h>
#include <corio/http.h>

#include <cerrno>
#include <cstdio>
#include <string_view>

namespace
{

/* Runs in the coroutine. Returns 0 when every call gave what it should, else 1 (never a negative
 * value, which corio_run keeps for a loop it could not create). */
int body(void *)
{
    if (corio_nop() != 0)
        return 1;
    constexpr std::string_view head = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    corio_http_parser parser;
    corio_http_parser_init(&parser);
    corio_http_limits limits;
    corio_http_limits_init(&limits);
    corio_http_request req{};
    corio_http_header headers[8];
    ssize_t n =
        corio_http_parse_request(&parser, head.data(), head.size(), &limits, &req, headers, 8);
    bool ok = n == static_cast<ssize_t>(head.size()) && req.method == CORIO_HTTP_POST &&
              req.content_length == 3 && req.num_headers == 2 &&
              std::string_view(corio_http_reason(404)) == "Not Found";
    return ok ? 0 : 1;
}

} /* namespace */

int main()
{
    int res = corio_run(body, nullptr, nullptr);
    if (res == -ENOSYS || res == -EPERM) {
        std::printf("SKIP: io_uring unavailable: %s\n", corio_strerror_setup(res));
        return 77;
    }
    if (res != 0) {
        std::fprintf(stderr, "C++ consumer failed: %d\n", res);
        return 1;
    }
    std::printf("corio %s: C++ ok\n", CORIO_VERSION_STRING);
    return 0;
}

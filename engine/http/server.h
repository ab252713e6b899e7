/* The server's declarations are public: include/corio/http.h. */
#ifndef CORIO_HTTP_SERVER_H
#define CORIO_HTTP_SERVER_H
#include <corio/http.h>
#endif

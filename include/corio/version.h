/* corio: version of the headers. */
#ifndef CORIO_VERSION_H
#define CORIO_VERSION_H

#define CORIO_VERSION_MAJOR 0
#define CORIO_VERSION_MINOR 1
#define CORIO_VERSION_PATCH 0
#define CORIO_VERSION_STRING "0.1.0"

#endif

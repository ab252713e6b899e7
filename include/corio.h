/* corio's public header lives at corio/corio.h, beside corio/http.h and corio/version.h: one
 * folder for everything corio installs. This file forwards to it, so that both
 * #include <corio.h> and #include <corio/corio.h> work. */
#include "corio/corio.h"

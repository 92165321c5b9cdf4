/* A library some user already preloads: it says so on stderr when it is loaded, so a test can
 * tell that `tmpshm exec` kept it in LD_PRELOAD. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void loaded(void) {
    const char *tag = getenv("OTHER_PRELOAD_TAG");
    fprintf(stderr, "other preload loaded (%s)\n", tag ? tag : "-");
}

/* libFuzzer target for the configuration parser: parses arbitrary bytes
 * with rtmd_config_parse into a defaulted configuration and checks that a
 * failed parse leaves it untouched and always explains itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rtmd_config cfg, before;
    char err[256];
    rtmd_config_defaults(&cfg);
    before = cfg;
    err[0] = '\0';
    if (rtmd_config_parse(&cfg, (const char *)data, size, "fuzz.conf", err, sizeof err) != 0) {
        if (memcmp(&cfg, &before, sizeof cfg) != 0 || strncmp(err, "fuzz.conf:", 10) != 0)
            abort();
        return 0;
    }
    /* A successful parse yields a configuration that passes its own checks. */
    if (cfg.nprojects > RTMD_MAX_PROJECTS || rtmd_config_check(&cfg, "fuzz.conf", err, sizeof err) != 0)
        abort();
    for (size_t i = 0; i < cfg.nprojects; i++)
        if (cfg.projects[i].pid <= 0 || strlen(cfg.projects[i].secret) < 8)
            abort();
    return 0;
}

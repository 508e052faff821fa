/* libFuzzer target for what the files module reads from peers as text
 * (modules/files/parse.h): an upload's attrs as JSON, and a download's
 * Range header against body sizes around the numbers it names. A sign is
 * found only with its 32 characters, names and extensions stay within
 * their bounds, an extension is letters and digits only, and a range is
 * always inside the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static void check_range(const char *header, uint64_t size)
{
    uint64_t first = 0, last = 0;
    int r = file_range_parse(header, size, &first, &last);
    if (r < -1 || r > 1)
        abort();
    if (r == 1 && (size == 0 || first > last || last >= size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    file_attrs a;
    if (file_attrs_parse((const char *)data, size, &a) && strlen(a.sign) != FILE_SIGN_HEX)
        abort();
    if (strlen(a.name) > FILE_NAME_MAX || strlen(a.ext) > FILE_EXT_MAX)
        abort();
    for (const char *p = a.ext; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            abort();
    if (a.ext[0])
        (void)file_type_of_ext(a.ext);

    char header[256];
    size_t n = size < sizeof header - 1 ? size : sizeof header - 1;
    memcpy(header, data, n);
    header[n] = '\0';
    static const uint64_t sizes[] = {0, 1, 2, 10, 65536, 5242880, UINT64_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_range(header, sizes[i]);
    /* the sizes the header names */
    const char *digits = strpbrk(header, "0123456789");
    if (digits) {
        uint64_t v = strtoull(digits, NULL, 10);
        check_range(header, v);
        check_range(header, v + 1);
        if (v)
            check_range(header, v - 1);
    }
    return 0;
}

/* libFuzzer target: arbitrary bytes fed to a server ws_conn. The first byte
 * picks the chunk size (0: everything at once); the send callback discards
 * its bytes; messages starting with 'E' are echoed back and one starting
 * with 'C' makes the server close, to exercise the calls made from inside
 * on_message. */
#include "ws.h"

#include <stdint.h>
#include <string.h>

typedef struct fuzz_state {
    ws_conn *ws;
    size_t sent;
} fuzz_state;

static void on_message(void *ud, const uint8_t *data, size_t len, bool binary)
{
    fuzz_state *st = ud;
    if (len > 1024)
        __builtin_trap(); /* above max_message */
    if (len > 0 && data[0] == 'E')
        (void)ws_send_binary(st->ws, data, len);
    else if (len > 0 && data[0] == 'C')
        (void)ws_close(st->ws, 1000);
}

static int discard(void *ud, const uint8_t *data, size_t len)
{
    fuzz_state *st = ud;
    st->sent += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = data[0] % 32;
    data++;
    size--;
    if (chunk == 0)
        chunk = size ? size : 1;

    static const ws_callbacks cb = { .on_message = on_message, .send = discard };
    fuzz_state st = { 0 };
    st.ws = ws_conn_new(&cb, &st, 1024);
    if (!st.ws)
        return 0;
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (ws_feed(st.ws, data + off, n) != 0)
            break;
        off += n;
    }
    if (!ws_closed(st.ws)) {
        (void)ws_send_binary(st.ws, (const uint8_t *)"bye", 3);
        (void)ws_close(st.ws, 1001);
    }
    ws_conn_free(st.ws);
    return 0;
}

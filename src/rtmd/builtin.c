/* Built-in FPNN methods every gate answers: keepalive (`ping`, `*ping`),
 * the orderly goodbye (`bye`), and diagnostics (`*echo` returns its
 * arguments unchanged, `*infos` describes the server: version,
 * connections per gate and the methods each gate serves). */
#include "methods.h"
#include "payload.h"

static void method_ping(rtmd_request *req)
{
    request_answer_empty(req);
}

static void method_bye(rtmd_request *req)
{
    rtmd_conn *c = req->conn;
    request_answer_empty(req);
    conn_close_after_flush(c);
}

static void method_echo(rtmd_request *req)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *req->args);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

static void method_infos(rtmd_request *req)
{
    rtmd_server *srv = req->srv;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_str(&pk, "server", "rtmd");
    mp_pack_kv_str(&pk, "version", RTMD_VERSION);
    mp_pack_cstr(&pk, "connections");
    msgpack_pack_map(&pk, GATE_COUNT);
    for (int g = 0; g < GATE_COUNT; g++)
        mp_pack_kv_int(&pk, rtmd_gate_name((rtmd_gate)g), (int64_t)srv->net.metrics.current[g]);
    mp_pack_cstr(&pk, "methods");
    methods_pack_list(srv->methods, &pk);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

void builtin_methods_register(struct rtmd_methods *m)
{
    static const rtmd_method table[] = {
        {"ping", GATES_FPNN, method_ping, RTMD_M_OPEN},
        {"*ping", GATES_FPNN, method_ping, RTMD_M_OPEN},
        {"bye", GATES_FPNN, method_bye, RTMD_M_OPEN},
        {"*echo", GATES_FPNN, method_echo, RTMD_M_OPEN},
        {"*infos", GATES_FPNN, method_infos, RTMD_M_OPEN},
    };
    methods_register(m, table, sizeof table / sizeof table[0]);
}

/*
 * A qemu-user TCG plugin that counts executed guest instructions (all threads) and snapshots the count at
 * marker system calls, so that one emulated process can measure several stages.
 *
 * The guest marks a point with lseek(-1, MARK_BASE + k, SEEK_SET) (it fails with EBADF and does nothing else);
 * the plugin records (k, instructions so far). At exit it writes "k count" lines, then "total count", to the
 * file named by the plugin argument out=PATH (stderr without it).
 *
 * Build: gcc -shared -fPIC -O2 -o insncount.so insncount.c
 * Use:   qemu-aarch64 -cpu cortex-a72 -plugin ./insncount.so,arg=out=counts.txt PROGRAM ...   (QEMU 7.2 syntax)
 *        (newer QEMU: -plugin ./insncount.so,out=counts.txt)
 * Only the few declarations of QEMU's plugin API (version 1) that this file uses are written out below.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1, uint64_t a2,
                             uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define AARCH64_SYS_LSEEK 62
#define MARK_BASE 0x5fe0000000ULL
#define MAX_MARKS 4096

static uint64_t total;
static uint64_t marks[MAX_MARKS][2];
static int n_marks;
static char out_path[4096];

static void tb_exec(unsigned int vcpu, void *udata)
{
    __atomic_fetch_add(&total, (uint64_t)(uintptr_t)udata, __ATOMIC_RELAXED);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num != AARCH64_SYS_LSEEK || (uint32_t)a1 != 0xffffffffu || a2 < MARK_BASE || a2 >= MARK_BASE + 1000000)
        return;
    int i = __atomic_fetch_add(&n_marks, 1, __ATOMIC_RELAXED);
    if (i < MAX_MARKS) {
        marks[i][0] = a2 - MARK_BASE;
        marks[i][1] = __atomic_load_n(&total, __ATOMIC_RELAXED);
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (!f)
        f = stderr;
    for (int i = 0; i < n_marks && i < MAX_MARKS; i++)
        fprintf(f, "%" PRIu64 " %" PRIu64 "\n", marks[i][0], marks[i][1]);
    fprintf(f, "total %" PRIu64 "\n", total);
    if (f != stderr)
        fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "out=", 4) == 0)
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}

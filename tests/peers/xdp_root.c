// A stand-in for the root program of an XDP data plane that runs its stages from a program
// array (Katran's root does this), for the chaining tests (issue 22): it counts every packet,
// tail-calls slot 1 (where the guard puts itself, `[attach] into = "...:1"`), and if that slot is
// empty, slot 2 (the UPF's own program); with both empty it passes.
//
// clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c xdp_root.c -o xdp_root.o
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_tail_call)(void *ctx, void *map, __u32 index) = (void *)BPF_FUNC_tail_call;

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} root_jmp SEC(".maps");

// [0] packets seen, [1] packets no slot took.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} root_counts SEC(".maps");

static void bump(__u32 i) {
    __u64 *c = bpf_map_lookup_elem(&root_counts, &i);
    if (c)
        __sync_fetch_and_add(c, 1);
}

SEC("xdp")
int xdp_root(struct xdp_md *ctx) {
    bump(0);
    bpf_tail_call(ctx, &root_jmp, 1);
    bpf_tail_call(ctx, &root_jmp, 2);
    bump(1);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

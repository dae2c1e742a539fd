// A stand-in for an XDP UPF's program, for the chaining tests (issue 22): written for the test,
// not by the guard's code, compiled with clang and loaded with bpftool. It counts every packet
// it sees, counts GTP-U G-PDUs by TEID (TS 29.281 §5.1: octets 5-8 of the GTP-U header), and
// drops UDP to port 9999 (its own verdict, which must stand after the guard passed the packet).
//
// clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c xdp_upf.c -o xdp_upf.o
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) =
    (void *)BPF_FUNC_map_update_elem;

#define DROP_PORT 9999
#define GTPU_PORT 2152

// [0] packets seen, [1] packets dropped.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} upf_counts SEC(".maps");

// G-PDUs seen per TEID (host order).
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u64);
} upf_teids SEC(".maps");

static void bump(__u32 i) {
    __u64 *c = bpf_map_lookup_elem(&upf_counts, &i);
    if (c)
        __sync_fetch_and_add(c, 1);
}

SEC("xdp")
int xdp_upf(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    bump(0);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->protocol != 17 || ip->ihl != 5)
        return XDP_PASS;
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > end)
        return XDP_PASS;
    if (udp->dest == __builtin_bswap16(DROP_PORT)) {
        bump(1);
        return XDP_DROP;
    }
    if (udp->dest == __builtin_bswap16(GTPU_PORT)) {
        unsigned char *gtp = (void *)(udp + 1);
        if ((void *)(gtp + 8) > end || gtp[1] != 255)
            return XDP_PASS;
        __u32 teid = ((__u32)gtp[4] << 24) | ((__u32)gtp[5] << 16) | ((__u32)gtp[6] << 8) | gtp[7];
        __u64 *n = bpf_map_lookup_elem(&upf_teids, &teid);
        if (n) {
            __sync_fetch_and_add(n, 1);
        } else {
            __u64 one = 1;
            bpf_map_update_elem(&upf_teids, &teid, &one, BPF_NOEXIST);
        }
    }
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

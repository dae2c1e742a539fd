// The cheapest next program: XDP_PASS. Measures what handing a packet on costs the guard
// (tests/tests/cost_chain.rs), not what the next program does.
#include <linux/bpf.h>
#define SEC(name) __attribute__((section(name), used))
SEC("xdp")
int xdp_pass(struct xdp_md *ctx) {
    return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";

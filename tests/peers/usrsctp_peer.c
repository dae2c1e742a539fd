/*
 * usrsctp_peer: a real SCTP endpoint (libusrsctp, RFC 9260) for the real-n2 lab.
 *
 * The kernel here has no SCTP (DESIGN §7), so the stack runs in userspace over a raw IPv4
 * socket for protocol 132 (usrsctp_init with port 0: no UDP encapsulation). That raw socket
 * sees every SCTP packet of its network namespace, so there is one process (one stack) per
 * namespace: the AMF in the core namespace, every gNB association in the RAN namespace.
 *
 *   usrsctp_peer amf <addr> <port> <ngsetup-response-hex> <hb-ms>
 *       One-to-many socket bound to <addr>:<port>, listening. Answers an NGSetupRequest
 *       (TS 38.413 §8.7.1, procedure code 21) with the given NGSetupResponse.
 *   usrsctp_peer gnb <hb-ms>
 *       Associations on command, one one-to-one socket per gNB, each bound to its own address.
 *
 * Commands on stdin (one per line, bounded length):
 *   connect <id> <local-addr> <local-port> <remote-addr> <remote-port>   (gnb)
 *   send <id> <stream> <hex>                                             (gnb; PPID 60)
 *   close <id>                                                           (gnb; SHUTDOWN)
 *   quit
 * Events on stdout, one JSON object per line (see the Rust side, tests/src/real_n2/peers.rs).
 * Times are CLOCK_MONOTONIC nanoseconds, the clock of the guard's hook payloads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <usrsctp.h>

#define MAX_ASSOCS 64
#define MAX_LINE 8192
#define PPID_NGAP 60 /* TS 38.412 §7 */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int is_amf;
static struct socket *amf_sock;
static uint8_t setup_rsp[1024];
static size_t setup_rsp_len;

struct assoc {
	struct socket *sock;
	int used;   /* the id was taken (its counters are reported) */
	int closed; /* the socket was closed (its address and port can be bound again) */
	uint64_t sent, send_fail, rcvd, bytes_sent;
};
static struct assoc assocs[MAX_ASSOCS];

static uint64_t now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
	va_list ap;
	if (pthread_mutex_lock(&out_lock) != 0)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static const char *addr_str(const union sctp_sockstore *a, char *buf, size_t len)
{
	if (a->sa.sa_family == AF_INET && inet_ntop(AF_INET, &a->sin.sin_addr, buf, (socklen_t)len))
		return buf;
	return "";
}

static const char *assoc_state(uint16_t s)
{
	switch (s) {
	case SCTP_COMM_UP: return "comm_up";
	case SCTP_COMM_LOST: return "comm_lost";
	case SCTP_RESTART: return "restart";
	case SCTP_SHUTDOWN_COMP: return "shutdown_comp";
	case SCTP_CANT_STR_ASSOC: return "cant_str_assoc";
	default: return "other";
	}
}

static void notification(int id, const union sctp_notification *n, size_t len)
{
	if (len < sizeof(n->sn_header))
		return;
	switch (n->sn_header.sn_type) {
	case SCTP_ASSOC_CHANGE:
		if (len < sizeof(struct sctp_assoc_change))
			return;
		emit("{\"ev\":\"assoc\",\"id\":%d,\"state\":\"%s\",\"error\":%u,\"assoc\":%u,\"t\":%" PRIu64 "}", id,
		     assoc_state(n->sn_assoc_change.sac_state), n->sn_assoc_change.sac_error,
		     (unsigned)n->sn_assoc_change.sac_assoc_id, now_ns());
		break;
	case SCTP_SHUTDOWN_EVENT:
		emit("{\"ev\":\"peer_shutdown\",\"id\":%d,\"t\":%" PRIu64 "}", id, now_ns());
		break;
	case SCTP_REMOTE_ERROR:
		emit("{\"ev\":\"remote_error\",\"id\":%d,\"t\":%" PRIu64 "}", id, now_ns());
		break;
	case SCTP_SEND_FAILED_EVENT:
		emit("{\"ev\":\"send_failed\",\"id\":%d,\"t\":%" PRIu64 "}", id, now_ns());
		break;
	case SCTP_PEER_ADDR_CHANGE:
		if (len < sizeof(struct sctp_paddr_change))
			return;
		emit("{\"ev\":\"paddr\",\"id\":%d,\"state\":%u,\"t\":%" PRIu64 "}", id,
		     n->sn_paddr_change.spc_state, now_ns());
		break;
	default:
		break;
	}
}

/* Called from usrsctp's threads; the stack hands over `data` (ours to free). */
static int on_receive(struct socket *sock, union sctp_sockstore addr, void *data, size_t len,
		      struct sctp_rcvinfo rcv, int flags, void *ulp)
{
	int id = (int)(intptr_t)ulp;
	char a[INET_ADDRSTRLEN];
	if (data == NULL) {
		/* The association went away under the socket. */
		return 1;
	}
	if (flags & MSG_NOTIFICATION) {
		notification(id, data, len);
		free(data);
		return 1;
	}
	const uint8_t *b = data;
	uint32_t ppid = ntohl(rcv.rcv_ppid);
	emit("{\"ev\":\"data\",\"id\":%d,\"assoc\":%u,\"peer\":\"%s\",\"ppid\":%" PRIu32
	     ",\"sid\":%u,\"len\":%zu,\"b\":\"%02x%02x\",\"t\":%" PRIu64 "}",
	     id, (unsigned)rcv.rcv_assoc_id, addr_str(&addr, a, sizeof(a)), ppid, rcv.rcv_sid, len,
	     len > 0 ? b[0] : 0, len > 1 ? b[1] : 0, now_ns());
	if (id >= 0 && id < MAX_ASSOCS)
		assocs[id].rcvd++;
	/* AMF: an NGSetupRequest (initiatingMessage, procedure code 21) gets the NGSetupResponse. */
	if (is_amf && ppid == PPID_NGAP && len >= 2 && b[0] == 0x00 && b[1] == 21 && setup_rsp_len > 0) {
		struct sctp_sndinfo si;
		memset(&si, 0, sizeof(si));
		si.snd_ppid = htonl(PPID_NGAP);
		si.snd_assoc_id = rcv.rcv_assoc_id;
		si.snd_sid = 0; /* non-UE-associated signalling: stream 0 (TS 38.412 §7) */
		if (usrsctp_sendv(sock, setup_rsp, setup_rsp_len, NULL, 0, &si, sizeof(si), SCTP_SENDV_SNDINFO, 0) < 0)
			emit("{\"ev\":\"send_error\",\"id\":%d,\"errno\":%d}", id, errno);
		else
			emit("{\"ev\":\"ng_setup_response\",\"assoc\":%u,\"t\":%" PRIu64 "}", (unsigned)rcv.rcv_assoc_id, now_ns());
	}
	free(data);
	return 1;
}

static int set_opt(struct socket *s, int opt, const void *v, socklen_t len, const char *what)
{
	if (usrsctp_setsockopt(s, IPPROTO_SCTP, opt, v, len) < 0) {
		emit("{\"ev\":\"error\",\"what\":\"setsockopt %s\",\"errno\":%d}", what, errno);
		return -1;
	}
	return 0;
}

/* Events, SCTP_NODELAY, 4 streams each way, rcvinfo with data. */
static int configure(struct socket *s, sctp_assoc_t aid)
{
	const uint16_t types[] = { SCTP_ASSOC_CHANGE, SCTP_PEER_ADDR_CHANGE, SCTP_REMOTE_ERROR,
				   SCTP_SHUTDOWN_EVENT, SCTP_SEND_FAILED_EVENT };
	const int on = 1;
	struct sctp_initmsg im;
	size_t i;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct sctp_event ev;
		memset(&ev, 0, sizeof(ev));
		ev.se_assoc_id = aid;
		ev.se_type = types[i];
		ev.se_on = 1;
		if (set_opt(s, SCTP_EVENT, &ev, sizeof(ev), "SCTP_EVENT") < 0)
			return -1;
	}
	if (set_opt(s, SCTP_RECVRCVINFO, &on, sizeof(on), "SCTP_RECVRCVINFO") < 0 ||
	    set_opt(s, SCTP_NODELAY, &on, sizeof(on), "SCTP_NODELAY") < 0)
		return -1;
	memset(&im, 0, sizeof(im));
	im.sinit_num_ostreams = 4;
	im.sinit_max_instreams = 4;
	return set_opt(s, SCTP_INITMSG, &im, sizeof(im), "SCTP_INITMSG");
}

static int parse_addr(const char *s, const char *port, struct sockaddr_in *sin)
{
	char *end = NULL;
	long p = strtol(port, &end, 10);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	if (end == port || *end != '\0' || p < 0 || p > 65535 || inet_pton(AF_INET, s, &sin->sin_addr) != 1)
		return -1;
	sin->sin_port = htons((uint16_t)p);
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static long unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = strlen(h), i;
	if (n % 2 != 0 || n / 2 > cap)
		return -1;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

static int get_id(const char *s)
{
	char *end = NULL;
	long id = s ? strtol(s, &end, 10) : -1;
	if (!s || end == s || *end != '\0' || id < 0 || id >= MAX_ASSOCS)
		return -1;
	return (int)id;
}

static void cmd_connect(char *args)
{
	char *sv = NULL;
	int id = get_id(strtok_r(args, " ", &sv));
	char *la = strtok_r(NULL, " ", &sv), *lp = strtok_r(NULL, " ", &sv);
	char *ra = strtok_r(NULL, " ", &sv), *rp = strtok_r(NULL, " ", &sv);
	struct sockaddr_in l, r;
	struct socket *s;
	if (id < 0 || !la || !lp || !ra || !rp || parse_addr(la, lp, &l) < 0 || parse_addr(ra, rp, &r) < 0 ||
	    assocs[id].used) {
		emit("{\"ev\":\"error\",\"what\":\"bad connect command\"}");
		return;
	}
	s = usrsctp_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP, on_receive, NULL, 0, (void *)(intptr_t)id);
	if (!s) {
		emit("{\"ev\":\"error\",\"id\":%d,\"what\":\"usrsctp_socket\",\"errno\":%d}", id, errno);
		return;
	}
	assocs[id].sock = s;
	assocs[id].used = 1;
	if (configure(s, SCTP_FUTURE_ASSOC) < 0 || usrsctp_set_non_blocking(s, 1) < 0)
		return;
	if (usrsctp_bind(s, (struct sockaddr *)&l, sizeof(l)) < 0) {
		emit("{\"ev\":\"error\",\"id\":%d,\"what\":\"bind %s\",\"errno\":%d}", id, la, errno);
		return;
	}
	emit("{\"ev\":\"connect\",\"id\":%d,\"local\":\"%s\",\"t\":%" PRIu64 "}", id, la, now_ns());
	/* Non-blocking: INIT goes out now; COMM_UP (or CANT_STR_ASSOC after Max.Init.Retransmits,
	 * RFC 9260 §5.1) arrives as a notification. */
	if (usrsctp_connect(s, (struct sockaddr *)&r, sizeof(r)) < 0 && errno != EINPROGRESS)
		emit("{\"ev\":\"error\",\"id\":%d,\"what\":\"connect\",\"errno\":%d}", id, errno);
}

static void cmd_send(char *args)
{
	static uint8_t buf[MAX_LINE / 2];
	char *sv = NULL;
	int id = get_id(strtok_r(args, " ", &sv));
	char *sid = strtok_r(NULL, " ", &sv), *hex = strtok_r(NULL, " ", &sv);
	struct sctp_sndinfo si;
	char *end = NULL;
	long stream = sid ? strtol(sid, &end, 10) : -1;
	long n;
	/* 4 outbound streams were requested (SCTP_INITMSG): stream ids 0..3. */
	if (id < 0 || !sid || end == sid || *end != '\0' || stream < 0 || stream > 3 || !hex ||
	    !assocs[id].used || assocs[id].closed || (n = unhex(hex, buf, sizeof(buf))) <= 0) {
		emit("{\"ev\":\"error\",\"what\":\"bad send command\"}");
		return;
	}
	memset(&si, 0, sizeof(si));
	si.snd_sid = (uint16_t)stream;
	si.snd_ppid = htonl(PPID_NGAP);
	if (usrsctp_sendv(assocs[id].sock, buf, (size_t)n, NULL, 0, &si, sizeof(si), SCTP_SENDV_SNDINFO, 0) < 0) {
		assocs[id].send_fail++;
		emit("{\"ev\":\"send_error\",\"id\":%d,\"errno\":%d,\"t\":%" PRIu64 "}", id, errno, now_ns());
	} else {
		assocs[id].sent++;
		assocs[id].bytes_sent += (uint64_t)n;
	}
}

static void cmd_close(char *args)
{
	char *sv = NULL;
	int id = get_id(strtok_r(args, " ", &sv));
	if (id < 0 || !assocs[id].used || assocs[id].closed)
		return;
	/* Closing a one-to-one socket without SO_LINGER starts the graceful SHUTDOWN (RFC 9260
	 * §9.2) once the queued DATA is acknowledged, and frees the address and port for a new
	 * socket (a mere shutdown() would keep them bound). */
	usrsctp_close(assocs[id].sock);
	assocs[id].closed = 1;
	emit("{\"ev\":\"closed\",\"id\":%d,\"t\":%" PRIu64 "}", id, now_ns());
}

static void stack_stats(void)
{
	struct sctpstat st;
	int i;
	memset(&st, 0, sizeof(st));
	usrsctp_get_stat(&st);
	emit("{\"ev\":\"stack\",\"role\":\"%s\",\"activeestab\":%u,\"passiveestab\":%u,\"restartestab\":%u,"
	     "\"collisionestab\":%u,\"aborted\":%u,\"outoftheblue\":%u,\"timoinit\":%u,\"timoheartbeat\":%u,"
	     "\"checksumerrors\":%u,\"t\":%" PRIu64 "}",
	     is_amf ? "amf" : "gnb", st.sctps_activeestab, st.sctps_passiveestab, st.sctps_restartestab,
	     st.sctps_collisionestab, st.sctps_aborted, st.sctps_outoftheblue, st.sctps_timoinit,
	     st.sctps_timoheartbeat, st.sctps_checksumerrors, now_ns());
	for (i = 0; i < MAX_ASSOCS; i++)
		if (assocs[i].used)
			emit("{\"ev\":\"counts\",\"id\":%d,\"sent\":%" PRIu64 ",\"send_fail\":%" PRIu64
			     ",\"rcvd\":%" PRIu64 ",\"bytes_sent\":%" PRIu64 "}",
			     i, assocs[i].sent, assocs[i].send_fail, assocs[i].rcvd, assocs[i].bytes_sent);
}

static void finish(void)
{
	int i;
	for (i = 0; i < MAX_ASSOCS; i++)
		if (assocs[i].used && !assocs[i].closed) {
			usrsctp_close(assocs[i].sock);
			assocs[i].closed = 1;
		}
	if (amf_sock)
		usrsctp_close(amf_sock);
	/* usrsctp_finish refuses while associations are still being torn down: bounded wait. */
	for (i = 0; i < 50 && usrsctp_finish() != 0; i++)
		usleep(100 * 1000);
}

static int amf_listen(const char *addr, const char *port)
{
	struct sockaddr_in l;
	if (parse_addr(addr, port, &l) < 0)
		return -1;
	amf_sock = usrsctp_socket(AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP, on_receive, NULL, 0, (void *)(intptr_t)0);
	if (!amf_sock || configure(amf_sock, SCTP_FUTURE_ASSOC) < 0)
		return -1;
	if (usrsctp_bind(amf_sock, (struct sockaddr *)&l, sizeof(l)) < 0 || usrsctp_listen(amf_sock, 1) < 0) {
		emit("{\"ev\":\"error\",\"what\":\"bind/listen\",\"errno\":%d}", errno);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static char line[MAX_LINE];
	long hb;
	int lines;
	if (argc < 3 || (strcmp(argv[1], "amf") != 0 && strcmp(argv[1], "gnb") != 0) ||
	    (strcmp(argv[1], "amf") == 0 && argc != 6)) {
		fprintf(stderr, "usage: %s amf <addr> <port> <ngsetup-response-hex> <hb-ms> | gnb <hb-ms>\n", argv[0]);
		return 2;
	}
	is_amf = strcmp(argv[1], "amf") == 0;
	hb = strtol(argv[is_amf ? 5 : 2], NULL, 10);
	if (hb < 100 || hb > 60000) {
		fprintf(stderr, "heartbeat interval out of range (100..60000 ms)\n");
		return 2;
	}
	if (is_amf) {
		long n = unhex(argv[4], setup_rsp, sizeof(setup_rsp));
		if (n < 0) {
			fprintf(stderr, "bad NGSetupResponse hex\n");
			return 2;
		}
		setup_rsp_len = (size_t)n;
	}
	/* Port 0: SCTP directly over IPv4 (raw socket, protocol 132), no UDP encapsulation. */
	usrsctp_init(0, NULL, NULL);
	/* RTO.Initial 1 s (RFC 9260 §16 default; usrsctp's own default is 3 s) and a short
	 * HEARTBEAT interval (§8.3) so a lab run of a minute sees heartbeats on every path. */
	if (usrsctp_sysctl_set_sctp_rto_initial_default(1000) != 0 ||
	    usrsctp_sysctl_set_sctp_heartbeat_interval_default((uint32_t)hb) != 0 ||
	    usrsctp_sysctl_set_sctp_blackhole(0) != 0) {
		fprintf(stderr, "usrsctp sysctl refused\n");
		return 1;
	}
	if (is_amf && amf_listen(argv[2], argv[3]) < 0) {
		finish();
		return 1;
	}
	emit("{\"ev\":\"ready\",\"role\":\"%s\",\"pid\":%d,\"t\":%" PRIu64 "}", argv[1], (int)getpid(), now_ns());
	/* Bounded: at most this many commands (the lab sends far fewer). */
	for (lines = 0; lines < 10000000 && fgets(line, sizeof(line), stdin); lines++) {
		size_t n = strlen(line);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (strncmp(line, "connect ", 8) == 0 && !is_amf)
			cmd_connect(line + 8);
		else if (strncmp(line, "send ", 5) == 0 && !is_amf)
			cmd_send(line + 5);
		else if (strncmp(line, "close ", 6) == 0 && !is_amf)
			cmd_close(line + 6);
		else if (strcmp(line, "stats") == 0)
			stack_stats();
		else if (strcmp(line, "quit") == 0)
			break;
		else if (n > 0)
			emit("{\"ev\":\"error\",\"what\":\"unknown command\"}");
	}
	stack_stats();
	finish();
	emit("{\"ev\":\"exit\",\"t\":%" PRIu64 "}", now_ns());
	return 0;
}

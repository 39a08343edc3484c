/*
 * visit.h - one visit to another process's user + network namespace.
 *
 * Theory of operation
 * -------------------
 * A TAP belongs to the network namespace of the task that opens /dev/net/tun, and creating one
 * needs CAP_NET_ADMIN in the user namespace owning that netns. An unprivileged task must therefore
 * join the target's user namespace first, then its network namespace. setns(CLONE_NEWUSER) is
 * refused (EINVAL) in any multithreaded process, and Node always has threads, so the namespace
 * work runs in a fresh single-threaded task:
 *
 *   clone(CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD) on a small mmap'd stack,
 *   with every signal blocked around the call.
 *
 * CLONE_VM: the child writes its results straight into a struct in our memory.
 * CLONE_FILES: every fd the child opens is already valid here (no SCM_RIGHTS passing).
 * CLONE_VFORK: this thread sleeps until the child exits, so the struct is never raced.
 *
 * Because the child shares our address space (and our thread's TLS pointer), it may only make raw
 * system calls: no malloc, no stdio, no locks, and not even libc wrappers, whose errno would land
 * in the parent thread's TLS. It records every fd it opens in the struct; the parent, not the
 * child, closes them on failure, so even a child killed half way leaves nothing open.
 *
 * The visit does everything in one go, in this order (the step names are what a failure reports):
 *
 *   open-userns, setns-user      join the user namespace (optional)
 *   open-netns, setns-net        join the network namespace
 *   per queue: open-tun, tunsetiff, vnethdrsz, tunsetoffload
 *   socket                       an AF_INET datagram socket inside the netns, for link ioctls
 *   lo-up                        (loopbackUp)
 *   mtu, hwaddr, addr, netmask, link-up, route      (link config), or link-up alone (up)
 *   getmac, ifindex              read back what the caller needs
 *
 * TUNSETPERSIST is never used: the TAP disappears with its last fd.
 */
#ifndef TAPSWITCH_VISIT_H
#define TAPSWITCH_VISIT_H

#include <stdint.h>
#include <net/if.h>

#define TS_MAX_QUEUES 16

/* Failing steps, in visit order. Names and syscalls: ts_step_name(), ts_step_syscall(). */
enum ts_step {
	TS_STEP_NONE = 0,
	TS_STEP_OPEN_USERNS,
	TS_STEP_SETNS_USER,
	TS_STEP_OPEN_NETNS,
	TS_STEP_SETNS_NET,
	TS_STEP_OPEN_TUN,
	TS_STEP_TUNSETIFF,
	TS_STEP_VNETHDRSZ,
	TS_STEP_TUNSETOFFLOAD,
	TS_STEP_SOCKET,
	TS_STEP_LO_UP,
	TS_STEP_MTU,
	TS_STEP_HWADDR,
	TS_STEP_ADDR,
	TS_STEP_NETMASK,
	TS_STEP_LINK_UP,
	TS_STEP_ROUTE,
	TS_STEP_GETMAC,
	TS_STEP_IFINDEX,
	TS_STEP_CLONE,
	TS_STEP_COUNT
};

struct ts_link {
	uint32_t mtu;
	uint32_t address;	/* host order */
	uint32_t prefix_length;	/* 1..32 */
	uint32_t gateway;	/* host order, 0 = no default route */
	int has_mac;
	uint8_t mac[6];
};

struct ts_visit {
	/* Inputs, filled by the caller. Strings must stay valid during ts_visit_run(). */
	const char *userns;	/* NULL: join no user namespace */
	int userns_optional;	/* ignore EPERM/EINVAL from setns(CLONE_NEWUSER) */
	const char *netns;
	char name[IFNAMSIZ];
	int queues;		/* 1..TS_MAX_QUEUES */
	int vnet_hdr;
	uint32_t offloads;	/* TUN_F_* */
	int loopback_up;
	int has_link;
	struct ts_link link;
	int up;			/* only bring the TAP up (ignored with has_link) */

	/* Outputs. */
	int fds[TS_MAX_QUEUES];	/* queue fds, -1 when not open */
	int failed_step;	/* enum ts_step, TS_STEP_NONE on success */
	int err;		/* positive errno of the failed step */
	int vnet_hdr_out;	/* IFF_VNET_HDR read back with TUNGETIFF */
	uint32_t offloads_out;
	uint8_t mac_out[6];
	int ifindex;

	/* Child bookkeeping: fds that only live during the visit, and a completion mark. */
	int userns_fd, netns_fd, sock_fd;
	int completed;
};

/* Prepare a visit struct: zero everything, mark every fd as closed. */
void ts_visit_init(struct ts_visit *v);

/*
 * Run the visit. Returns 0 on success (v->fds[0..queues) open, O_NONBLOCK|O_CLOEXEC), or -1 with
 * v->failed_step and v->err set and every fd opened on the way closed again.
 */
int ts_visit_run(struct ts_visit *v);

const char *ts_step_name(int step);
const char *ts_step_syscall(int step);

#endif

/*
 * visit.c - open TAP queues and configure the link inside another process's namespaces.
 * See visit.h for the theory of operation. Everything named child_* runs in the clone()d child
 * and must stay within raw system calls on memory we already own.
 */
#define _GNU_SOURCE
#include "visit.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <net/route.h>
#include <net/if_arp.h>
#include <linux/if_tun.h>

#ifndef IFF_MULTI_QUEUE
#define IFF_MULTI_QUEUE 0x0100
#endif

/* Room for the child's few frames (ifreq, rtentry); nothing it calls can grow it. */
#define CHILD_STACK_SIZE (64 * 1024)

/* ---- raw system calls: return -errno, never touch errno ---- */

#if defined(__x86_64__)
static inline long raw_syscall4(long n, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
static inline long raw_syscall4(long n, long a, long b, long c, long d)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
			 : "memory", "cc");
	return x0;
}
#else
/*
 * Other architectures: libc's syscall(). It stores errno into the parent thread's TLS, which is
 * harmless only because that thread is suspended (CLONE_VFORK) until the child is gone.
 */
static inline long raw_syscall4(long n, long a, long b, long c, long d)
{
	long r = syscall(n, a, b, c, d);
	return r == -1 ? -(long)errno : r;
}
#endif

static inline long child_open(const char *path, int flags)
{
	return raw_syscall4(SYS_openat, AT_FDCWD, (long)path, flags, 0);
}

static inline long child_ioctl(int fd, unsigned long req, long arg)
{
	return raw_syscall4(SYS_ioctl, fd, (long)req, arg, 0);
}

static inline long child_setns(int fd, int nstype)
{
	return raw_syscall4(SYS_setns, fd, nstype, 0, 0);
}

static inline long child_socket(int domain, int type, int protocol)
{
	return raw_syscall4(SYS_socket, domain, type, protocol, 0);
}

/* ---- the child ---- */

static int child_fail(struct ts_visit *v, int step, long ret)
{
	v->failed_step = step;
	v->err = (int)-ret;
	return 0;
}

/* Copy the interface name into ifr_name; the struct was zeroed, so it stays terminated. */
static void child_set_name(struct ifreq *ifr, const char *name)
{
	size_t i;

	for (i = 0; i < IFNAMSIZ - 1 && name[i]; i++)
		ifr->ifr_name[i] = name[i];
}

static void child_set_in(struct sockaddr *sa, uint32_t addr_host_order)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;

	sin->sin_family = AF_INET;
	sin->sin_port = 0;
	sin->sin_addr.s_addr = htonl(addr_host_order);
}

/* SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP added. */
static long child_set_up(int sock, const char *name)
{
	struct ifreq ifr;
	long r;

	memset(&ifr, 0, sizeof(ifr));
	child_set_name(&ifr, name);
	r = child_ioctl(sock, SIOCGIFFLAGS, (long)&ifr);
	if (r < 0)
		return r;
	if (ifr.ifr_flags & IFF_UP)
		return 0;
	ifr.ifr_flags |= IFF_UP;
	return child_ioctl(sock, SIOCSIFFLAGS, (long)&ifr);
}

static int child_open_queues(struct ts_visit *v)
{
	short flags = IFF_TAP | IFF_NO_PI;
	struct ifreq ifr;
	int q;
	long r;

	if (v->vnet_hdr)
		flags |= IFF_VNET_HDR;
	if (v->queues > 1)
		flags |= IFF_MULTI_QUEUE;

	for (q = 0; q < v->queues; q++) {
		r = child_open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (r < 0)
			return child_fail(v, TS_STEP_OPEN_TUN, r);
		v->fds[q] = (int)r;

		memset(&ifr, 0, sizeof(ifr));
		child_set_name(&ifr, v->name);
		ifr.ifr_flags = flags;
		r = child_ioctl(v->fds[q], TUNSETIFF, (long)&ifr);
		if (r < 0)
			return child_fail(v, TS_STEP_TUNSETIFF, r);

		if (q == 0) {
			/* What did we really get? An existing TAP keeps some flags of its own. */
			memset(&ifr, 0, sizeof(ifr));
			r = child_ioctl(v->fds[0], TUNGETIFF, (long)&ifr);
			if (r < 0)
				return child_fail(v, TS_STEP_TUNSETIFF, r);
			v->vnet_hdr_out = (ifr.ifr_flags & IFF_VNET_HDR) != 0;
		}

		if (v->vnet_hdr_out) {
			int hdr_size = 10;	/* struct virtio_net_hdr, no num_buffers */

			r = child_ioctl(v->fds[q], TUNSETVNETHDRSZ, (long)&hdr_size);
			if (r < 0)
				return child_fail(v, TS_STEP_VNETHDRSZ, r);
			/* The argument is the value itself, not a pointer. */
			r = child_ioctl(v->fds[q], TUNSETOFFLOAD, (long)(unsigned long)v->offloads);
			if (r < 0)
				return child_fail(v, TS_STEP_TUNSETOFFLOAD, r);
			v->offloads_out = v->offloads;
		}
	}
	return 1;
}

static int child_configure_link(struct ts_visit *v, int sock)
{
	const struct ts_link *l = &v->link;
	struct ifreq ifr;
	struct rtentry rt;
	uint32_t mask;
	long r;

	memset(&ifr, 0, sizeof(ifr));
	child_set_name(&ifr, v->name);
	ifr.ifr_mtu = (int)l->mtu;
	r = child_ioctl(sock, SIOCSIFMTU, (long)&ifr);
	if (r < 0)
		return child_fail(v, TS_STEP_MTU, r);

	if (l->has_mac) {
		/* Before the link is up: a running TAP refuses a new address (EBUSY). */
		memset(&ifr, 0, sizeof(ifr));
		child_set_name(&ifr, v->name);
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		memcpy(ifr.ifr_hwaddr.sa_data, l->mac, 6);
		r = child_ioctl(sock, SIOCSIFHWADDR, (long)&ifr);
		if (r < 0)
			return child_fail(v, TS_STEP_HWADDR, r);
	}

	memset(&ifr, 0, sizeof(ifr));
	child_set_name(&ifr, v->name);
	child_set_in(&ifr.ifr_addr, l->address);
	r = child_ioctl(sock, SIOCSIFADDR, (long)&ifr);
	if (r < 0)
		return child_fail(v, TS_STEP_ADDR, r);

	/* SIOCSIFADDR guessed a classful mask (10/8); the kernel also moves the broadcast along. */
	mask = l->prefix_length >= 32 ? 0xffffffffu : ~(0xffffffffu >> l->prefix_length);
	memset(&ifr, 0, sizeof(ifr));
	child_set_name(&ifr, v->name);
	child_set_in(&ifr.ifr_netmask, mask);
	r = child_ioctl(sock, SIOCSIFNETMASK, (long)&ifr);
	if (r < 0)
		return child_fail(v, TS_STEP_NETMASK, r);

	/* Up: the prefix route appears now, which the gateway below needs to be reachable. */
	r = child_set_up(sock, v->name);
	if (r < 0)
		return child_fail(v, TS_STEP_LINK_UP, r);

	if (l->gateway) {
		memset(&rt, 0, sizeof(rt));
		child_set_in(&rt.rt_dst, 0);
		child_set_in(&rt.rt_genmask, 0);
		child_set_in(&rt.rt_gateway, l->gateway);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = v->name;	/* copied by the kernel; lives in our shared memory */
		r = child_ioctl(sock, SIOCADDRT, (long)&rt);
		if (r < 0)
			return child_fail(v, TS_STEP_ROUTE, r);
	}
	return 1;
}

static int child_main(void *arg)
{
	struct ts_visit *v = arg;
	struct ifreq ifr;
	long r;

	if (v->userns) {
		r = child_open(v->userns, O_RDONLY | O_CLOEXEC);
		if (r < 0)
			return child_fail(v, TS_STEP_OPEN_USERNS, r);
		v->userns_fd = (int)r;
		r = child_setns(v->userns_fd, CLONE_NEWUSER);
		if (r < 0 && !(v->userns_optional && (r == -EPERM || r == -EINVAL)))
			return child_fail(v, TS_STEP_SETNS_USER, r);
	}

	r = child_open(v->netns, O_RDONLY | O_CLOEXEC);
	if (r < 0)
		return child_fail(v, TS_STEP_OPEN_NETNS, r);
	v->netns_fd = (int)r;
	r = child_setns(v->netns_fd, CLONE_NEWNET);
	if (r < 0)
		return child_fail(v, TS_STEP_SETNS_NET, r);

	if (!child_open_queues(v))
		return 0;

	r = child_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (r < 0)
		return child_fail(v, TS_STEP_SOCKET, r);
	v->sock_fd = (int)r;

	if (v->loopback_up) {
		r = child_set_up(v->sock_fd, "lo");
		if (r < 0)
			return child_fail(v, TS_STEP_LO_UP, r);
	}

	if (v->has_link) {
		if (!child_configure_link(v, v->sock_fd))
			return 0;
	} else if (v->up) {
		r = child_set_up(v->sock_fd, v->name);
		if (r < 0)
			return child_fail(v, TS_STEP_LINK_UP, r);
	}

	memset(&ifr, 0, sizeof(ifr));
	child_set_name(&ifr, v->name);
	r = child_ioctl(v->sock_fd, SIOCGIFHWADDR, (long)&ifr);
	if (r < 0)
		return child_fail(v, TS_STEP_GETMAC, r);
	memcpy(v->mac_out, ifr.ifr_hwaddr.sa_data, 6);

	memset(&ifr, 0, sizeof(ifr));
	child_set_name(&ifr, v->name);
	r = child_ioctl(v->sock_fd, SIOCGIFINDEX, (long)&ifr);
	if (r < 0)
		return child_fail(v, TS_STEP_IFINDEX, r);
	v->ifindex = ifr.ifr_ifindex;

	v->completed = 1;
	return 0;
}

/* ---- the parent ---- */

void ts_visit_init(struct ts_visit *v)
{
	int i;

	memset(v, 0, sizeof(*v));
	for (i = 0; i < TS_MAX_QUEUES; i++)
		v->fds[i] = -1;
	v->userns_fd = v->netns_fd = v->sock_fd = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

int ts_visit_run(struct ts_visit *v)
{
	sigset_t all, old;
	void *stack;
	pid_t pid;
	int status = 0, clone_err = 0, i;

	v->failed_step = TS_STEP_NONE;
	v->completed = 0;

	stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		v->failed_step = TS_STEP_CLONE;
		v->err = errno;
		return -1;
	}

	/*
	 * No signal handler may run in the child: it would execute Node's handlers on our stack
	 * with our memory. Blocked here, the mask is inherited by the child.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);

	pid = clone(child_main, (char *)stack + CHILD_STACK_SIZE,
		    CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, v);
	if (pid < 0) {
		clone_err = errno;
	} else {
		/* CLONE_VFORK: the child has already exited; reap it before anyone else can. */
		while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
			;
	}

	pthread_sigmask(SIG_SETMASK, &old, NULL);
	munmap(stack, CHILD_STACK_SIZE);

	close_fd(&v->userns_fd);
	close_fd(&v->netns_fd);
	close_fd(&v->sock_fd);

	if (pid < 0) {
		v->failed_step = TS_STEP_CLONE;
		v->err = clone_err;
	} else if (v->failed_step == TS_STEP_NONE && !v->completed) {
		/* Killed half way (e.g. SIGKILL): report it against the clone step. */
		v->failed_step = TS_STEP_CLONE;
		v->err = WIFSIGNALED(status) ? EINTR : ECHILD;
	}

	if (v->failed_step != TS_STEP_NONE) {
		for (i = 0; i < TS_MAX_QUEUES; i++)
			close_fd(&v->fds[i]);
		return -1;
	}
	return 0;
}

static const struct {
	const char *name;
	const char *syscall;
} steps[TS_STEP_COUNT] = {
	[TS_STEP_NONE] = { "none", "" },
	[TS_STEP_OPEN_USERNS] = { "open-userns", "open" },
	[TS_STEP_SETNS_USER] = { "setns-user", "setns" },
	[TS_STEP_OPEN_NETNS] = { "open-netns", "open" },
	[TS_STEP_SETNS_NET] = { "setns-net", "setns" },
	[TS_STEP_OPEN_TUN] = { "open-tun", "open" },
	[TS_STEP_TUNSETIFF] = { "tunsetiff", "ioctl" },
	[TS_STEP_VNETHDRSZ] = { "vnethdrsz", "ioctl" },
	[TS_STEP_TUNSETOFFLOAD] = { "tunsetoffload", "ioctl" },
	[TS_STEP_SOCKET] = { "socket", "socket" },
	[TS_STEP_LO_UP] = { "lo-up", "ioctl" },
	[TS_STEP_MTU] = { "mtu", "ioctl" },
	[TS_STEP_HWADDR] = { "hwaddr", "ioctl" },
	[TS_STEP_ADDR] = { "addr", "ioctl" },
	[TS_STEP_NETMASK] = { "netmask", "ioctl" },
	[TS_STEP_LINK_UP] = { "link-up", "ioctl" },
	[TS_STEP_ROUTE] = { "route", "ioctl" },
	[TS_STEP_GETMAC] = { "getmac", "ioctl" },
	[TS_STEP_IFINDEX] = { "ifindex", "ioctl" },
	[TS_STEP_CLONE] = { "clone", "clone" },
};

const char *ts_step_name(int step)
{
	return step > 0 && step < TS_STEP_COUNT ? steps[step].name : "unknown";
}

const char *ts_step_syscall(int step)
{
	return step > 0 && step < TS_STEP_COUNT ? steps[step].syscall : "unknown";
}

/*
 * tapswitch.c - the N-API surface of tapswitch's native addon (typed by native/index.d.ts).
 *
 * Theory of operation
 * -------------------
 * The addon only performs system calls and hands back numbers and fds; every policy decision lives
 * in TypeScript. Four groups of functions:
 *
 *   openTap         one visit to another process's namespaces (visit.c): open the TAP queues,
 *                   set offloads, configure the link. Failures throw an Error with `code`,
 *                   `errno` (positive), `syscall` and `step`.
 *   readBatch, write, writev, close, openPingSocket
 *                   the data path: syscall failures come back as -errno, never as exceptions, so
 *                   the packet path needs no try/catch. Bad arguments still throw TypeError; in
 *                   particular no slot or offset may address memory outside the given buffers.
 *   Poller          a uv_poll_t on the calling thread's own loop (worker threads included) that
 *                   calls a JS function whenever the fd is readable.
 *   TUN_F           the offload bits, with the USO bits defined where old headers lack them.
 *
 * Poller lifecycle. A poller owns three things with different lifetimes: the uv handle (made
 * by the first start(), so only pollers that really poll occupy their fd in the loop; freed only
 * in its close callback), the JS wrapper (finalized by GC or at env teardown) and the env
 * itself (a worker may exit at any moment). The C struct is freed when both the handle is closed
 * and the wrapper is finalized. While started, the poller holds a strong reference to its own JS
 * object, so an active poller is never collected under a running handle. An async env cleanup
 * hook stops and closes the handle if the env goes away first (a worker exiting with a started
 * poller), and Node keeps the loop turning until the close callback has run; after that the
 * struct makes no more N-API calls.
 */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <linux/if_tun.h>

#include "visit.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

#define WRITEV_MAX_PARTS 64

/* ---- errors ---- */

static const char *errno_name(int err)
{
	switch (err) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
	E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV)
	E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY)
	E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(EDOM) E(ERANGE)
	E(EDEADLK) E(ENAMETOOLONG) E(ENOLCK) E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(ENOMSG)
	E(EIDRM) E(ENODATA) E(ETIME) E(ENOLINK) E(EPROTO) E(EBADMSG) E(EOVERFLOW) E(EBADFD)
	E(EILSEQ) E(EUSERS) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE)
	E(ENOPROTOOPT) E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(EOPNOTSUPP) E(EPFNOSUPPORT)
	E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH)
	E(ENETRESET) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN)
	E(ESHUTDOWN) E(ETOOMANYREFS) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTDOWN)
	E(EHOSTUNREACH) E(EALREADY) E(EINPROGRESS) E(ESTALE) E(EDQUOT) E(ECANCELED)
	E(EOWNERDEAD) E(ENOTRECOVERABLE) E(ERFKILL) E(ENOMEDIUM) E(EMEDIUMTYPE)
#undef E
	default:
		return "UNKNOWN";
	}
}

/* A failed N-API call: keep a pending JS exception, otherwise throw one describing the call. */
static void throw_napi_failure(napi_env env, const char *what)
{
	const napi_extended_error_info *info = NULL;
	bool pending = false;
	char msg[256];

	napi_is_exception_pending(env, &pending);
	if (pending)
		return;
	napi_get_last_error_info(env, &info);
	snprintf(msg, sizeof(msg), "tapswitch native: %s failed: %s", what,
		 info && info->error_message ? info->error_message : "unknown N-API error");
	napi_throw_error(env, NULL, msg);
}

#define NAPI_CALL(env, call)                              \
	do {                                              \
		if ((call) != napi_ok) {                  \
			throw_napi_failure((env), #call); \
			return NULL;                      \
		}                                         \
	} while (0)

/* Like NAPI_CALL, for helpers that return -1 on failure. */
#define NAPI_CALL_INT(env, call)                          \
	do {                                              \
		if ((call) != napi_ok) {                  \
			throw_napi_failure((env), #call); \
			return -1;                        \
		}                                         \
	} while (0)

static int throw_type(napi_env env, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int throw_type(napi_env env, const char *code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	napi_throw_type_error(env, code, msg);
	return -1;
}

static int set_named(napi_env env, napi_value obj, const char *key, napi_value val)
{
	NAPI_CALL_INT(env, napi_set_named_property(env, obj, key, val));
	return 0;
}

static int set_int(napi_env env, napi_value obj, const char *key, int64_t n)
{
	napi_value v;

	NAPI_CALL_INT(env, napi_create_int64(env, n, &v));
	return set_named(env, obj, key, v);
}

static int set_str(napi_env env, napi_value obj, const char *key, const char *s)
{
	napi_value v;

	NAPI_CALL_INT(env, napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v));
	return set_named(env, obj, key, v);
}

static void throw_visit_error(napi_env env, const struct ts_visit *v)
{
	const char *code = errno_name(v->err);
	char msg[256], buf[128];
	const char *text = strerror_r(v->err, buf, sizeof(buf));
	napi_value jcode, jmsg, error;

	snprintf(msg, sizeof(msg), "openTap: %s failed: %s (%s)", ts_step_name(v->failed_step), text,
		 code);
	if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
	    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
	    napi_create_error(env, jcode, jmsg, &error) != napi_ok ||
	    set_int(env, error, "errno", v->err) < 0 ||
	    set_str(env, error, "syscall", ts_step_syscall(v->failed_step)) < 0 ||
	    set_str(env, error, "step", ts_step_name(v->failed_step)) < 0) {
		throw_napi_failure(env, "creating the openTap error");
		return;
	}
	napi_throw(env, error);
}

/* ---- argument helpers: 0 on success, -1 with a TypeError thrown ---- */

static int arg_integer(napi_env env, napi_value v, const char *name, double min, double max,
		       int64_t *out)
{
	napi_valuetype t;
	double d;

	NAPI_CALL_INT(env, napi_typeof(env, v, &t));
	if (t != napi_number)
		return throw_type(env, "ERR_INVALID_ARG_TYPE", "%s must be a number", name);
	NAPI_CALL_INT(env, napi_get_value_double(env, v, &d));
	if (!(d >= min && d <= max) || d != (double)(int64_t)d)
		return throw_type(env, "ERR_OUT_OF_RANGE", "%s must be an integer in %.0f..%.0f, got %g",
				  name, min, max, d);
	*out = (int64_t)d;
	return 0;
}

static int arg_fd(napi_env env, napi_value v, int *fd)
{
	int64_t n;

	if (arg_integer(env, v, "fd", 0, INT32_MAX, &n) < 0)
		return -1;
	*fd = (int)n;
	return 0;
}

/* A Uint8Array (Buffer included) or Uint8ClampedArray. */
static int arg_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len)
{
	napi_typedarray_type type;
	bool is_ta = false;
	void *p = NULL;

	NAPI_CALL_INT(env, napi_is_typedarray(env, v, &is_ta));
	if (is_ta)
		NAPI_CALL_INT(env, napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL));
	if (!is_ta || (type != napi_uint8_array && type != napi_uint8_clamped_array))
		return throw_type(env, "ERR_INVALID_ARG_TYPE", "%s must be a Uint8Array", name);
	*data = p;
	if (*data == NULL)
		*len = 0;	/* detached or empty */
	return 0;
}

static int arg_int32_array(napi_env env, napi_value v, const char *name, int32_t **data,
			   size_t *len)
{
	napi_typedarray_type type;
	bool is_ta = false;
	void *p = NULL;

	NAPI_CALL_INT(env, napi_is_typedarray(env, v, &is_ta));
	if (is_ta)
		NAPI_CALL_INT(env, napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL));
	if (!is_ta || type != napi_int32_array)
		return throw_type(env, "ERR_INVALID_ARG_TYPE", "%s must be an Int32Array", name);
	*data = p;
	if (*data == NULL)
		*len = 0;
	return 0;
}

/* obj[key], or NULL (no exception) when it is undefined or null. */
static int get_optional(napi_env env, napi_value obj, const char *key, napi_value *out)
{
	napi_valuetype t;

	NAPI_CALL_INT(env, napi_get_named_property(env, obj, key, out));
	NAPI_CALL_INT(env, napi_typeof(env, *out, &t));
	if (t == napi_undefined || t == napi_null)
		*out = NULL;
	return 0;
}

static int opt_bool(napi_env env, napi_value obj, const char *key, int *out)
{
	napi_value v;
	napi_valuetype t;
	bool b;

	if (get_optional(env, obj, key, &v) < 0)
		return -1;
	if (!v) {
		*out = 0;
		return 0;
	}
	NAPI_CALL_INT(env, napi_typeof(env, v, &t));
	if (t != napi_boolean)
		return throw_type(env, "ERR_INVALID_ARG_TYPE", "options.%s must be a boolean", key);
	NAPI_CALL_INT(env, napi_get_value_bool(env, v, &b));
	*out = b;
	return 0;
}

static int req_integer(napi_env env, napi_value obj, const char *prefix, const char *key,
		       double min, double max, int64_t *out)
{
	char name[64];
	napi_value v;

	snprintf(name, sizeof(name), "%s.%s", prefix, key);
	if (get_optional(env, obj, key, &v) < 0)
		return -1;
	if (!v)
		return throw_type(env, "ERR_INVALID_ARG_TYPE", "%s is required", name);
	return arg_integer(env, v, name, min, max, out);
}

/* A string option into a malloc'd C string (*out stays NULL when absent and optional). */
static int opt_string(napi_env env, napi_value obj, const char *key, int required, char **out)
{
	napi_value v;
	napi_valuetype t;
	size_t len;

	*out = NULL;
	if (get_optional(env, obj, key, &v) < 0)
		return -1;
	if (!v) {
		if (required)
			return throw_type(env, "ERR_INVALID_ARG_TYPE", "options.%s is required", key);
		return 0;
	}
	NAPI_CALL_INT(env, napi_typeof(env, v, &t));
	if (t != napi_string)
		return throw_type(env, "ERR_INVALID_ARG_TYPE", "options.%s must be a string", key);
	NAPI_CALL_INT(env, napi_get_value_string_utf8(env, v, NULL, 0, &len));
	*out = malloc(len + 1);
	if (!*out) {
		napi_throw_error(env, "ENOMEM", "out of memory");
		return -1;
	}
	if (napi_get_value_string_utf8(env, v, *out, len + 1, &len) != napi_ok) {
		free(*out);
		*out = NULL;
		throw_napi_failure(env, "napi_get_value_string_utf8");
		return -1;
	}
	if (strlen(*out) != len) {
		free(*out);
		*out = NULL;
		return throw_type(env, "ERR_INVALID_ARG_VALUE", "options.%s must not contain NUL", key);
	}
	return 0;
}

/* ---- openTap ---- */

static int parse_link(napi_env env, napi_value obj, struct ts_link *l)
{
	napi_value mac;
	int64_t n;

	if (req_integer(env, obj, "options.link", "mtu", 68, 65535, &n) < 0)
		return -1;
	l->mtu = (uint32_t)n;
	if (req_integer(env, obj, "options.link", "address", 0, UINT32_MAX, &n) < 0)
		return -1;
	l->address = (uint32_t)n;
	if (req_integer(env, obj, "options.link", "prefixLength", 1, 32, &n) < 0)
		return -1;
	l->prefix_length = (uint32_t)n;
	if (req_integer(env, obj, "options.link", "gateway", 0, UINT32_MAX, &n) < 0)
		return -1;
	l->gateway = (uint32_t)n;

	if (get_optional(env, obj, "mac", &mac) < 0)
		return -1;
	if (mac) {
		uint8_t *data;
		size_t len;

		if (arg_bytes(env, mac, "options.link.mac", &data, &len) < 0)
			return -1;
		if (len != 6)
			return throw_type(env, "ERR_INVALID_ARG_VALUE",
					  "options.link.mac must be 6 bytes, got %zu", len);
		memcpy(l->mac, data, 6);
		l->has_mac = 1;
	}
	return 0;
}

static int parse_open_options(napi_env env, napi_value opts, struct ts_visit *v, char **userns,
			      char **netns)
{
	napi_valuetype t;
	napi_value link;
	char *name = NULL;
	int64_t n;
	int b;

	NAPI_CALL_INT(env, napi_typeof(env, opts, &t));
	if (t != napi_object)
		return throw_type(env, "ERR_INVALID_ARG_TYPE", "options must be an object");

	if (opt_string(env, opts, "userns", 0, userns) < 0 ||
	    opt_bool(env, opts, "usernsOptional", &v->userns_optional) < 0 ||
	    opt_string(env, opts, "netns", 1, netns) < 0 ||
	    opt_string(env, opts, "name", 1, &name) < 0)
		return -1;
	v->userns = *userns;
	v->netns = *netns;
	if (name[0] == '\0' || strlen(name) >= IFNAMSIZ || strchr(name, '/') || strchr(name, '%')) {
		throw_type(env, "ERR_INVALID_ARG_VALUE",
			   "options.name must be an interface name of 1..%d characters, got '%s'",
			   IFNAMSIZ - 1, name);
		free(name);
		return -1;
	}
	memcpy(v->name, name, strlen(name) + 1);
	free(name);

	if (req_integer(env, opts, "options", "queues", 1, TS_MAX_QUEUES, &n) < 0)
		return -1;
	v->queues = (int)n;
	if (opt_bool(env, opts, "vnetHdr", &v->vnet_hdr) < 0)
		return -1;
	if (req_integer(env, opts, "options", "offloads", 0, UINT32_MAX, &n) < 0)
		return -1;
	v->offloads = (uint32_t)n;
	if (opt_bool(env, opts, "loopbackUp", &v->loopback_up) < 0 ||
	    opt_bool(env, opts, "up", &b) < 0)
		return -1;
	v->up = b;

	if (get_optional(env, opts, "link", &link) < 0)
		return -1;
	if (link) {
		NAPI_CALL_INT(env, napi_typeof(env, link, &t));
		if (t != napi_object)
			return throw_type(env, "ERR_INVALID_ARG_TYPE", "options.link must be an object");
		if (parse_link(env, link, &v->link) < 0)
			return -1;
		v->has_link = 1;
	}
	return 0;
}

static napi_value make_open_result(napi_env env, const struct ts_visit *v)
{
	napi_value result, fds, fd, mac, mac_ab, b;
	void *mac_data;
	int i;

	NAPI_CALL(env, napi_create_object(env, &result));
	NAPI_CALL(env, napi_create_array_with_length(env, v->queues, &fds));
	for (i = 0; i < v->queues; i++) {
		NAPI_CALL(env, napi_create_int32(env, v->fds[i], &fd));
		NAPI_CALL(env, napi_set_element(env, fds, i, fd));
	}
	NAPI_CALL(env, napi_set_named_property(env, result, "fds", fds));

	NAPI_CALL(env, napi_create_arraybuffer(env, 6, &mac_data, &mac_ab));
	memcpy(mac_data, v->mac_out, 6);
	NAPI_CALL(env, napi_create_typedarray(env, napi_uint8_array, 6, mac_ab, 0, &mac));
	NAPI_CALL(env, napi_set_named_property(env, result, "mac", mac));

	if (set_int(env, result, "ifindex", v->ifindex) < 0)
		return NULL;
	NAPI_CALL(env, napi_get_boolean(env, v->vnet_hdr_out, &b));
	NAPI_CALL(env, napi_set_named_property(env, result, "vnetHdr", b));
	if (set_int(env, result, "offloads", v->offloads_out) < 0)
		return NULL;
	return result;
}

static napi_value js_open_tap(napi_env env, napi_callback_info info)
{
	struct ts_visit v;
	char *userns = NULL, *netns = NULL;
	napi_value argv[1], result = NULL;
	size_t argc = 1;
	int i;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "ERR_INVALID_ARG_TYPE", "openTap(options): options missing");
		return NULL;
	}
	ts_visit_init(&v);
	if (parse_open_options(env, argv[0], &v, &userns, &netns) < 0)
		goto out;

	if (ts_visit_run(&v) < 0) {
		throw_visit_error(env, &v);
		goto out;
	}
	result = make_open_result(env, &v);
	if (!result) {
		/* The fds were never handed to JS: close them rather than leak. */
		for (i = 0; i < v.queues; i++)
			close(v.fds[i]);
	}
out:
	free(userns);
	free(netns);
	return result;
}

/* ---- frame I/O ---- */

static napi_value int_result(napi_env env, int64_t n)
{
	napi_value v;

	NAPI_CALL(env, napi_create_int64(env, n, &v));
	return v;
}

static napi_value js_read_batch(napi_env env, napi_callback_info info)
{
	napi_value argv[7];
	size_t argc = 7, slab_len, nslots_len, nlengths;
	uint8_t *slab;
	int32_t *slots, *lengths;
	int64_t slot_size, headroom, count, i;
	int64_t nslots;
	int fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 7) {
		throw_type(env, "ERR_INVALID_ARG_TYPE",
			   "readBatch(fd, slab, slotSize, headroom, slots, count, lengths): %zu arguments",
			   argc);
		return NULL;
	}
	if (arg_fd(env, argv[0], &fd) < 0 ||
	    arg_bytes(env, argv[1], "slab", &slab, &slab_len) < 0 ||
	    arg_integer(env, argv[2], "slotSize", 1, INT32_MAX, &slot_size) < 0 ||
	    arg_integer(env, argv[3], "headroom", 0, (double)(slot_size - 1), &headroom) < 0 ||
	    arg_int32_array(env, argv[4], "slots", &slots, &nslots_len) < 0 ||
	    arg_integer(env, argv[5], "count", 0, (double)nslots_len, &count) < 0 ||
	    arg_int32_array(env, argv[6], "lengths", &lengths, &nlengths) < 0)
		return NULL;
	if ((size_t)count > nlengths) {
		throw_type(env, "ERR_OUT_OF_RANGE", "lengths has %zu entries, count is %lld", nlengths,
			   (long long)count);
		return NULL;
	}
	nslots = (int64_t)(slab_len / (size_t)slot_size);
	/* Check every slot before consuming any frame. */
	for (i = 0; i < count; i++) {
		if (slots[i] < 0 || slots[i] >= nslots) {
			throw_type(env, "ERR_OUT_OF_RANGE",
				   "slots[%lld] = %d is outside the slab (%lld slots of %lld bytes)",
				   (long long)i, slots[i], (long long)nslots, (long long)slot_size);
			return NULL;
		}
	}

	for (i = 0; i < count; i++) {
		/* Re-read and re-check: slots may alias the slab and a read may just have changed it. */
		int32_t slot = slots[i];
		ssize_t n;

		if (slot < 0 || slot >= nslots) {
			throw_type(env, "ERR_OUT_OF_RANGE", "slots[%lld] changed during readBatch",
				   (long long)i);
			return NULL;
		}
		do {
			n = read(fd, slab + (size_t)slot * (size_t)slot_size + (size_t)headroom,
				 (size_t)(slot_size - headroom));
		} while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || i > 0)
				break;	/* a hard error after some frames shows up again next call */
			return int_result(env, -errno);
		}
		if (n == 0)
			break;	/* end of file (not a TAP): no frame */
		lengths[i] = (int32_t)n;
	}
	return int_result(env, i);
}

static napi_value js_write(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	size_t argc = 4, len;
	uint8_t *data;
	int64_t offset, length;
	ssize_t n;
	int fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 4) {
		throw_type(env, "ERR_INVALID_ARG_TYPE", "write(fd, buf, offset, length): %zu arguments",
			   argc);
		return NULL;
	}
	if (arg_fd(env, argv[0], &fd) < 0 || arg_bytes(env, argv[1], "buf", &data, &len) < 0 ||
	    arg_integer(env, argv[2], "offset", 0, (double)len, &offset) < 0 ||
	    arg_integer(env, argv[3], "length", 0, (double)(len - (size_t)offset), &length) < 0)
		return NULL;
	do {
		n = write(fd, data + offset, (size_t)length);
	} while (n < 0 && errno == EINTR);
	return int_result(env, n < 0 ? -errno : n);
}

static napi_value js_writev(napi_env env, napi_callback_info info)
{
	struct iovec iov[WRITEV_MAX_PARTS];
	napi_value argv[2], part;
	size_t argc = 2;
	uint32_t nparts, i;
	bool is_array = false;
	ssize_t n;
	int fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		throw_type(env, "ERR_INVALID_ARG_TYPE", "writev(fd, parts): %zu arguments", argc);
		return NULL;
	}
	if (arg_fd(env, argv[0], &fd) < 0)
		return NULL;
	NAPI_CALL(env, napi_is_array(env, argv[1], &is_array));
	if (!is_array) {
		throw_type(env, "ERR_INVALID_ARG_TYPE", "parts must be an array of Uint8Array");
		return NULL;
	}
	NAPI_CALL(env, napi_get_array_length(env, argv[1], &nparts));
	if (nparts > WRITEV_MAX_PARTS) {
		throw_type(env, "ERR_OUT_OF_RANGE", "parts has %u entries, at most %d allowed", nparts,
			   WRITEV_MAX_PARTS);
		return NULL;
	}
	for (i = 0; i < nparts; i++) {
		char name[32];
		uint8_t *data;
		size_t len;

		snprintf(name, sizeof(name), "parts[%u]", i);
		NAPI_CALL(env, napi_get_element(env, argv[1], i, &part));
		if (arg_bytes(env, part, name, &data, &len) < 0)
			return NULL;
		iov[i].iov_base = data;
		iov[i].iov_len = len;
	}
	do {
		n = writev(fd, iov, (int)nparts);
	} while (n < 0 && errno == EINTR);
	return int_result(env, n < 0 ? -errno : n);
}

/*
 * sendDatagrams4(fds, buf, offsets, lengths, addrs, ports, count, results): datagram i is
 * buf[offsets[i], offsets[i] + lengths[i]) sent from socket fds[i] to IPv4 addrs[i]:ports[i]
 * (host order). Consecutive entries with the same fd go out in one sendmmsg(2). results[i] is 0
 * (sent) or -errno; a full socket buffer (EAGAIN, ENOBUFS) fails the rest of that fd's run at once.
 * Returns the number of datagrams that failed. Every range is checked before anything is sent.
 */
#define SEND_BATCH_MAX 64

static int arg_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want,
		     const char *what, void **data, size_t *len)
{
	napi_typedarray_type type;
	bool is_ta = false;

	NAPI_CALL_INT(env, napi_is_typedarray(env, v, &is_ta));
	if (is_ta)
		NAPI_CALL_INT(env, napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL));
	if (!is_ta || type != want)
		return throw_type(env, "ERR_INVALID_ARG_TYPE", "%s must be a%s", name, what);
	if (*data == NULL)
		*len = 0;
	return 0;
}

static napi_value js_send_datagrams4(napi_env env, napi_callback_info info)
{
	struct mmsghdr msgs[SEND_BATCH_MAX];
	struct iovec iov[SEND_BATCH_MAX];
	struct sockaddr_in sa[SEND_BATCH_MAX];
	napi_value argv[8];
	size_t argc = 8, buf_len, n_fds, n_off, n_len, n_addr, n_port, n_res;
	uint8_t *buf;
	int32_t *fds, *offsets, *lengths, *ports, *results;
	uint32_t *addrs;
	int64_t count, i, failures = 0;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 8) {
		throw_type(env, "ERR_INVALID_ARG_TYPE",
			   "sendDatagrams4(fds, buf, offsets, lengths, addrs, ports, count, results): %zu arguments",
			   argc);
		return NULL;
	}
	if (arg_typed(env, argv[0], "fds", napi_int32_array, "n Int32Array", (void **)&fds, &n_fds) < 0 ||
	    arg_bytes(env, argv[1], "buf", &buf, &buf_len) < 0 ||
	    arg_typed(env, argv[2], "offsets", napi_int32_array, "n Int32Array", (void **)&offsets, &n_off) < 0 ||
	    arg_typed(env, argv[3], "lengths", napi_int32_array, "n Int32Array", (void **)&lengths, &n_len) < 0 ||
	    arg_typed(env, argv[4], "addrs", napi_uint32_array, " Uint32Array", (void **)&addrs, &n_addr) < 0 ||
	    arg_typed(env, argv[5], "ports", napi_int32_array, "n Int32Array", (void **)&ports, &n_port) < 0 ||
	    arg_integer(env, argv[6], "count", 0, SEND_BATCH_MAX, &count) < 0 ||
	    arg_typed(env, argv[7], "results", napi_int32_array, "n Int32Array", (void **)&results, &n_res) < 0)
		return NULL;
	if ((size_t)count > n_fds || (size_t)count > n_off || (size_t)count > n_len ||
	    (size_t)count > n_addr || (size_t)count > n_port || (size_t)count > n_res) {
		throw_type(env, "ERR_OUT_OF_RANGE", "count %lld exceeds an array's length", (long long)count);
		return NULL;
	}
	for (i = 0; i < count; i++) {
		if (fds[i] < 0 || offsets[i] < 0 || lengths[i] < 0 ||
		    (size_t)offsets[i] + (size_t)lengths[i] > buf_len || ports[i] < 1 || ports[i] > 65535) {
			throw_type(env, "ERR_OUT_OF_RANGE",
				   "datagram %lld: fd %d, range [%d, +%d) of %zu bytes, port %d", (long long)i,
				   fds[i], offsets[i], lengths[i], buf_len, ports[i]);
			return NULL;
		}
		iov[i].iov_base = buf + offsets[i];
		iov[i].iov_len = (size_t)lengths[i];
		memset(&sa[i], 0, sizeof(sa[i]));
		sa[i].sin_family = AF_INET;
		sa[i].sin_port = htons((uint16_t)ports[i]);
		sa[i].sin_addr.s_addr = htonl(addrs[i]);
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_name = &sa[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(sa[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	i = 0;
	while (i < count) {
		int64_t end = i, k = i;
		int fd = fds[i];

		while (end < count && fds[end] == fd)
			end++;
		while (k < end) {
			int n = sendmmsg(fd, msgs + k, (unsigned int)(end - k), MSG_DONTWAIT);

			if (n < 0) {
				int err = errno;

				if (err == EINTR)
					continue;
				if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
					for (; k < end; k++) {
						results[k] = -err;
						failures++;
					}
					break;
				}
				/* This datagram failed (sendmmsg reports the first failure): skip it. */
				results[k++] = -err;
				failures++;
				continue;
			}
			for (; n > 0; n--)
				results[k++] = 0;
		}
		i = end;
	}
	return int_result(env, failures);
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	size_t argc = 1;
	int fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "ERR_INVALID_ARG_TYPE", "close(fd): fd missing");
		return NULL;
	}
	if (arg_fd(env, argv[0], &fd) < 0)
		return NULL;
	/* Linux releases the fd even when close() reports EINTR: never retry. */
	return int_result(env, close(fd) < 0 ? -errno : 0);
}

static napi_value js_open_ping_socket(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	size_t argc = 1;
	int64_t family;
	int fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "ERR_INVALID_ARG_TYPE", "openPingSocket(family): family missing");
		return NULL;
	}
	if (arg_integer(env, argv[0], "family", 4, 6, &family) < 0)
		return NULL;
	if (family == 4)
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
	else if (family == 6)
		fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
	else {
		throw_type(env, "ERR_INVALID_ARG_VALUE", "family must be 4 or 6");
		return NULL;
	}
	return int_result(env, fd < 0 ? -errno : fd);
}

/* ---- Poller ---- */

struct poller {
	uv_poll_t handle;	/* initialised by the first start() */
	uv_loop_t *loop;	/* the constructing thread's loop */
	napi_env env;
	napi_ref self;		/* weak while stopped, strong while started */
	napi_ref callback;	/* strong until close */
	napi_async_context async;
	napi_async_cleanup_hook_handle cleanup;	/* registered until the handle is closed */
	int fd;
	unsigned handle_inited : 1;
	unsigned started : 1;
	unsigned closing : 1;		/* close begun */
	unsigned handle_closed : 1;	/* close finished (close callback ran) */
	unsigned wrapper_gone : 1;	/* finalizer ran */
	unsigned env_gone : 1;		/* env teardown began: no more N-API calls */
};

/* The handle is closed: free the struct if the wrapper is gone too. The caller must not touch p
 * afterwards. */
static void poller_closed(struct poller *p)
{
	napi_async_cleanup_hook_handle cleanup = p->cleanup;
	int free_now = p->wrapper_gone;

	p->cleanup = NULL;
	p->handle_closed = 1;
	if (free_now)
		free(p);
	/* Unregisters the hook, or, during teardown, tells Node this poller is done. A finalizer
	 * this may lead to sees handle_closed and frees the struct itself. */
	if (cleanup)
		napi_remove_async_cleanup_hook(cleanup);
}

static void poller_on_close(uv_handle_t *handle)
{
	poller_closed(handle->data);
}

/* Stop polling and drop every JS value but `self`. env must still be usable. */
static void poller_drop_js(struct poller *p)
{
	if (p->started) {
		uv_poll_stop(&p->handle);
		p->started = 0;
		if (p->self)
			napi_reference_unref(p->env, p->self, NULL);
	}
	if (p->callback) {
		napi_delete_reference(p->env, p->callback);
		p->callback = NULL;
	}
	if (p->async) {
		napi_async_destroy(p->env, p->async);
		p->async = NULL;
	}
}

/* Begin closing the handle. May free p (when the wrapper is gone): the caller's last touch. */
static void poller_close_handle(struct poller *p)
{
	if (p->closing)
		return;
	p->closing = 1;
	if (p->handle_inited)
		uv_close((uv_handle_t *)&p->handle, poller_on_close);
	else
		poller_closed(p);
}

/*
 * The env is going away (worker exit, process exit) before close(). An async cleanup hook rather
 * than a plain one: Node keeps running the loop until poller_closed() removes the hook, so the
 * handle is really closed before the worker's loop is (uv_loop_close with a handle still in it
 * aborts the process).
 */
static void poller_async_cleanup(napi_async_cleanup_hook_handle handle, void *arg)
{
	struct poller *p = arg;

	(void)handle;
	poller_drop_js(p);
	if (p->self) {
		napi_delete_reference(p->env, p->self);
		p->self = NULL;
	}
	p->env_gone = 1;
	if (p->closing)
		return;		/* closing already: its close callback removes the hook */
	poller_close_handle(p);
}

static void poller_finalize(napi_env env, void *data, void *hint)
{
	struct poller *p = data;

	(void)env;
	(void)hint;
	if (!p->env_gone) {
		/* Collected while stopped (a started poller holds itself alive), or the env's
		 * final sweep after close(). */
		poller_drop_js(p);
		if (p->self) {
			napi_delete_reference(p->env, p->self);
			p->self = NULL;
		}
	}
	p->wrapper_gone = 1;
	if (!p->closing)
		poller_close_handle(p);	/* frees p now or in the close callback */
	else if (p->handle_closed)
		free(p);
}

static void poller_on_readable(uv_poll_t *handle, int status, int events)
{
	struct poller *p = handle->data;
	napi_handle_scope scope;
	napi_value cb, self, ignored;
	napi_env env = p->env;
	napi_status st;

	(void)status;	/* an error (e.g. EBADF) is reported as readable: the read shows it */
	(void)events;
	if (p->env_gone || p->closing || !p->callback || !p->self)
		return;
	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	if (napi_get_reference_value(env, p->callback, &cb) == napi_ok && cb &&
	    napi_get_reference_value(env, p->self, &self) == napi_ok && self) {
		/* make_callback, not call_function: it drains the microtask queue afterwards. */
		st = napi_make_callback(env, p->async, self, cb, 0, NULL, &ignored);
		if (st == napi_pending_exception) {
			/* Not ours to swallow: hand it to Node as an uncaught exception. */
			napi_value exc;

			if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
				napi_fatal_exception(env, exc);
		}
	}
	napi_close_handle_scope(env, scope);
}

static struct poller *poller_unwrap(napi_env env, napi_callback_info info)
{
	struct poller *p = NULL;
	napi_value self;
	size_t argc = 0;

	if (napi_get_cb_info(env, info, &argc, NULL, &self, NULL) != napi_ok ||
	    napi_unwrap(env, self, (void **)&p) != napi_ok || !p) {
		throw_type(env, "ERR_INVALID_THIS", "not a Poller");
		return NULL;
	}
	return p;
}

static napi_value poller_new(napi_env env, napi_callback_info info)
{
	napi_value argv[2], self, target, name;
	napi_valuetype t;
	size_t argc = 2;
	struct poller *p;
	uv_loop_t *loop;
	int fd;

	NAPI_CALL(env, napi_get_new_target(env, info, &target));
	if (!target) {
		throw_type(env, "ERR_CONSTRUCT_CALL_REQUIRED", "Poller must be called with new");
		return NULL;
	}
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
	if (argc < 2) {
		throw_type(env, "ERR_INVALID_ARG_TYPE", "new Poller(fd, onReadable): %zu arguments",
			   argc);
		return NULL;
	}
	if (arg_fd(env, argv[0], &fd) < 0)
		return NULL;
	NAPI_CALL(env, napi_typeof(env, argv[1], &t));
	if (t != napi_function) {
		throw_type(env, "ERR_INVALID_ARG_TYPE", "onReadable must be a function");
		return NULL;
	}
	NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));

	p = calloc(1, sizeof(*p));
	if (!p) {
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	p->env = env;
	p->loop = loop;
	p->fd = fd;
	p->handle.data = p;
	if (napi_create_string_utf8(env, "tapswitch.Poller", NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_async_init(env, NULL, name, &p->async) != napi_ok ||
	    napi_create_reference(env, argv[1], 1, &p->callback) != napi_ok ||
	    napi_wrap(env, self, p, poller_finalize, NULL, NULL) != napi_ok) {
		throw_napi_failure(env, "new Poller");
		poller_drop_js(p);
		free(p);	/* no handle, no hook, no wrapper yet */
		return NULL;
	}
	/* Wrapped: from here on the finalizer cleans up. */
	NAPI_CALL(env, napi_create_reference(env, self, 0, &p->self));
	NAPI_CALL(env, napi_add_async_cleanup_hook(env, poller_async_cleanup, p, &p->cleanup));
	return self;
}

static napi_value poller_start(napi_env env, napi_callback_info info)
{
	struct poller *p = poller_unwrap(env, info);
	char msg[160];
	int r;

	if (!p)
		return NULL;
	if (p->closing) {
		napi_throw_error(env, "ERR_POLLER_CLOSED", "Poller.start: the poller is closed");
		return NULL;
	}
	if (p->started)
		return NULL;
	if (!p->self || !p->cleanup) {
		napi_throw_error(env, "ERR_POLLER_BROKEN", "Poller.start: incompletely constructed");
		return NULL;
	}
	if (!p->handle_inited) {
		/* Lazily: an fd is registered in the loop only by a poller that really polls it. */
		r = uv_poll_init(p->loop, &p->handle, p->fd);
		if (r < 0) {
			snprintf(msg, sizeof(msg), "Poller.start: uv_poll_init(%d) failed: %s", p->fd,
				 uv_strerror(r));
			napi_throw_error(env, uv_err_name(r), msg);
			return NULL;
		}
		p->handle.data = p;
		p->handle_inited = 1;
	}
	r = uv_poll_start(&p->handle, UV_READABLE, poller_on_readable);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "Poller.start: uv_poll_start(%d) failed: %s", p->fd,
			 uv_strerror(r));
		napi_throw_error(env, uv_err_name(r), msg);
		return NULL;
	}
	NAPI_CALL(env, napi_reference_ref(env, p->self, NULL));
	p->started = 1;
	return NULL;
}

static napi_value poller_stop(napi_env env, napi_callback_info info)
{
	struct poller *p = poller_unwrap(env, info);

	if (!p)
		return NULL;
	if (p->started) {
		uv_poll_stop(&p->handle);
		p->started = 0;
		NAPI_CALL(env, napi_reference_unref(env, p->self, NULL));
	}
	return NULL;
}

static napi_value poller_close(napi_env env, napi_callback_info info)
{
	struct poller *p = poller_unwrap(env, info);

	if (!p)
		return NULL;
	poller_drop_js(p);
	poller_close_handle(p);	/* the wrapper is alive: p is not freed here */
	return NULL;
}

/* ---- module ---- */

static int define_tun_f(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		uint32_t value;
	} bits[] = {
		{ "CSUM", TUN_F_CSUM }, { "TSO4", TUN_F_TSO4 }, { "TSO6", TUN_F_TSO6 },
		{ "TSO_ECN", TUN_F_TSO_ECN }, { "UFO", TUN_F_UFO }, { "USO4", TUN_F_USO4 },
		{ "USO6", TUN_F_USO6 },
	};
	napi_value obj;
	size_t i;

	NAPI_CALL_INT(env, napi_create_object(env, &obj));
	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (set_int(env, obj, bits[i].name, bits[i].value) < 0)
			return -1;
	NAPI_CALL_INT(env, napi_object_freeze(env, obj));
	return set_named(env, exports, "TUN_F", obj);
}

NAPI_MODULE_INIT()
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "openTap", js_open_tap },
		{ "readBatch", js_read_batch },
		{ "write", js_write },
		{ "writev", js_writev },
		{ "sendDatagrams4", js_send_datagrams4 },
		{ "close", js_close },
		{ "openPingSocket", js_open_ping_socket },
	};
	napi_property_descriptor methods[] = {
		{ "start", NULL, poller_start, NULL, NULL, NULL, napi_default_method, NULL },
		{ "stop", NULL, poller_stop, NULL, NULL, NULL, napi_default_method, NULL },
		{ "close", NULL, poller_close, NULL, NULL, NULL, napi_default_method, NULL },
	};
	napi_value fn, poller_class;
	size_t i;

	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		NAPI_CALL(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn,
						    NULL, &fn));
		NAPI_CALL(env, napi_set_named_property(env, exports, fns[i].name, fn));
	}
	NAPI_CALL(env, napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, poller_new, NULL,
					 sizeof(methods) / sizeof(methods[0]), methods,
					 &poller_class));
	NAPI_CALL(env, napi_set_named_property(env, exports, "Poller", poller_class));
	if (define_tun_f(env, exports) < 0)
		return NULL;
	return exports;
}

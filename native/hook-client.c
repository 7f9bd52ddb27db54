// pvteardown-hook: libvirt's qemu hook, as a small client of the daemon. libvirt runs the hook
// (hooks/qemu, which runs this) as `NAME OP SUBOP EXTRA` with the domain XML on stdin and waits
// for it at every guest start and stop, so this does no parsing and starts no runtime: it hands
// argv and the XML to the daemon in one request ({"op":"hook"}, src/daemon/hook-call.ts decides
// everything) and prints the daemon's line, if any, on stderr as one escaped line.
//
// Fail-open: the exit status is 1 only when the daemon's admission refused a start (policy
// strict); any fault of pvteardown's (no daemon, a dead socket, a timeout, a reply that is not
// one, an argument that is not UTF-8, oversized input) ends in one line on stderr and exit 0.
// Bounded: stdin is read for at most 2 s (8 MiB kept, the rest drained), each answer has its own
// timeout, and the whole call a deadline (PVTEARDOWN_HOOK_DEADLINE_MS, 100 to 3600000, default
// 10000), which grows only by the admission wait the daemon announces at prepare.
//
// Calls nothing is done for (args.ts's table, kept in step by test/system/hook.test.ts) drain
// stdin and exit 0 without a word or a connection: migrate and restore read stdout as XML, and
// nothing here ever writes to stdout.
//
// On the wire argv travels as JSON strings (an argument that is not valid UTF-8 is refused here:
// libvirt's names are UTF-8, and a replacement character would name another file) and the XML as
// base64 of its bytes (exact, whatever they are, and a fixed 4/3 of its size, which bounds the
// request line the daemon accepts for this op: MAX_HOOK_REQUEST_BYTES in src/protocol/api.ts).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/pvteardown/pvteardown.sock"
/** src/hook/domain-xml.ts MAX_XML_CHARS: what the daemon's reader takes. */
#define MAX_XML_BYTES (8u << 20)
#define STDIN_MS 2000
#define DEFAULT_DEADLINE_MS 10000
/** Per answer, as the node hook had them: status is answered at once, arm after at most 2 s
 * looking for a helper, the admission after its own timeout (which status announces). */
#define STATUS_MS 2000
#define ARM_MS 5000
#define EXITED_MS 3000
#define ADMIT_MARGIN_MS 5000
#define MAX_REPLY_BYTES (64u << 10)
/** Longest line printed; the daemon's lines are far shorter. */
#define MAX_LINE_BYTES 4096
#define REFUSED_EXIT 1

/** The calls acted upon (src/hook/args.ts ACTIONS); `what` names what a fault leaves undone. */
static const struct {
	const char *op, *subop, *what;
	int wants_xml, timeout_ms;
} ACTED[] = {
	{ "prepare", "begin", "admission skipped", 1, 0 },
	{ "started", "begin", "not armed", 1, ARM_MS },
	{ "reconnect", "begin", "not armed", 1, ARM_MS },
	{ "stopped", "end", "exit not reported", 0, EXITED_MS },
	{ "release", "end", "exit not reported", 0, EXITED_MS },
};
/** Every op libvirt's qemu driver calls the hook with (args.ts KNOWN_OPS). */
static const char *const KNOWN_OPS[] = { "prepare", "start", "started", "stopped", "release", "migrate", "restore", "reconnect", "attach" };

static int g_argc;
static char **g_argv;
static const char *g_socket;
static struct timespec g_start;
static long g_deadline_ms;

struct buf {
	char *p;
	size_t len, cap;
};

static long elapsed_ms(void) {
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - g_start.tv_sec) * 1000 + (now.tv_nsec - g_start.tv_nsec) / 1000000;
}

/** Appends `s` escaped as src/cli/format.ts visible() does: C0, DEL, C1, the backslash, the
 * Unicode line separators and bidi controls; a byte that is not UTF-8 as \xNN. */
static void escape_into(struct buf *out, const unsigned char *s, size_t n) {
	for (size_t i = 0; i < n && out->len + 16 < out->cap;) {
		unsigned c = s[i];
		char esc[16] = "";
		size_t used = 1;
		if (c == '\\') strcpy(esc, "\\\\");
		else if (c == '\n') strcpy(esc, "\\n");
		else if (c == '\r') strcpy(esc, "\\r");
		else if (c == '\t') strcpy(esc, "\\t");
		else if (c < 0x20 || c == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", c);
		else if (c >= 0x80) {
			uint32_t cp = 0;
			size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? (c < 0xf0 ? 3 : 0) : c >= 0xc2 ? 2 : 0;
			int ok = len > 0 && i + len <= n;
			if (ok) {
				cp = c & (0x7f >> len);
				for (size_t k = 1; k < len; k++) {
					if ((s[i + k] & 0xc0) != 0x80) ok = 0;
					cp = cp << 6 | (s[i + k] & 0x3f);
				}
				if (cp < (len == 3 ? 0x800u : len == 4 ? 0x10000u : 0x80u) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) ok = 0;
			}
			if (!ok) snprintf(esc, sizeof esc, "\\x%02x", c);
			else {
				used = len;
				if (cp <= 0x9f) snprintf(esc, sizeof esc, "\\x%02x", cp);
				else if (cp == 0x61c || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
					snprintf(esc, sizeof esc, "\\u%04x", cp);
			}
		}
		if (esc[0]) {
			memcpy(out->p + out->len, esc, strlen(esc));
			out->len += strlen(esc);
		} else {
			memcpy(out->p + out->len, s + i, used);
			out->len += used;
		}
		i += used;
	}
}

/** One line on stderr: "pvteardown hook: " and the message, every argument escaped. */
static void say(const char *fmt, ...) {
	char raw[MAX_LINE_BYTES];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	char line[MAX_LINE_BYTES * 2 + 32];
	struct buf out = { line, 0, sizeof line };
	memcpy(line, "pvteardown hook: ", 17);
	out.len = 17;
	escape_into(&out, (const unsigned char *)raw, (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1);
	line[out.len++] = '\n';
	// One write: libvirt logs what the hook writes, and a partial line must not be followed by another.
	if (write(2, line, out.len) < 0) return;
}

/** The call as given, shown shortened: "g prepare begin -". */
static const char *call_text(void) {
	static char text[512];
	size_t len = 0;
	for (int i = 1; i < g_argc && len + 2 < sizeof text; i++) {
		int n = snprintf(text + len, sizeof text - len, "%s%s", i > 1 ? " " : "", g_argv[i]);
		if (n < 0) break;
		len += (size_t)n;
	}
	if (len >= sizeof text) strcpy(text + sizeof text - 4, "...");
	return text;
}

static _Noreturn void give_up_at_deadline(void) {
	say("'%s' did not finish within %ld ms: given up, nothing more done (fail-open)", call_text(), g_deadline_ms);
	exit(0);
}

/** ms until `phase_end` (ms since start), or until the deadline if that comes first; <= 0: over. */
static int remaining(long phase_end, int *is_deadline) {
	long now = elapsed_ms();
	long end = phase_end < g_deadline_ms ? phase_end : g_deadline_ms;
	*is_deadline = end == g_deadline_ms && phase_end >= g_deadline_ms;
	long left = end - now;
	return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static void oom(void) {
	say("out of memory: nothing done (fail-open)");
	exit(0);
}

static void reserve(struct buf *b, size_t more) {
	if (b->len + more <= b->cap) return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more) cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) oom();
	b->p = p;
	b->cap = cap;
}

static void append(struct buf *b, const char *s, size_t n) {
	reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void append_str(struct buf *b, const char *s) {
	append(b, s, strlen(s));
}

/** Reads the XML: at most MAX_XML_BYTES kept, the rest drained, for at most STDIN_MS. `problem`
 * says why what was kept may be incomplete. A terminal or a closed stdin gives no XML. */
static void read_stdin(struct buf *xml, int keep, char *problem, size_t problem_len) {
	if (isatty(0) || fcntl(0, F_GETFL) == -1) return;
	long phase_end = elapsed_ms() + STDIN_MS;
	char drain[65536];
	for (;;) {
		int is_deadline;
		int left = remaining(phase_end, &is_deadline);
		struct pollfd p = { .fd = 0, .events = POLLIN };
		int r = left > 0 ? poll(&p, 1, left) : 0;
		if (r < 0 && errno == EINTR) continue;
		if (r == 0) {
			if (is_deadline) give_up_at_deadline();
			snprintf(problem, problem_len, "stdin not closed within %d ms", STDIN_MS);
			return;
		}
		if (r < 0) {
			snprintf(problem, problem_len, "stdin: %s", strerror(errno));
			return;
		}
		char *into = drain;
		size_t room = sizeof drain;
		if (keep && xml->len < MAX_XML_BYTES) {
			reserve(xml, 65536);
			into = xml->p + xml->len;
			room = xml->cap - xml->len;
			if (room > MAX_XML_BYTES - xml->len) room = MAX_XML_BYTES - xml->len;
		}
		ssize_t n = read(0, into, room);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
		if (n < 0) {
			snprintf(problem, problem_len, "stdin: %s", strerror(errno));
			return;
		}
		if (n == 0) return;
		if (into == drain) {
			if (keep && !problem[0]) snprintf(problem, problem_len, "stdin longer than %u bytes", MAX_XML_BYTES);
		} else xml->len += (size_t)n;
	}
}

/** Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n) {
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		if (len == 0 || i + len > n) return 0;
		uint32_t cp = c & (0x7f >> len);
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80) return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < (len == 3 ? 0x800u : len == 4 ? 0x10000u : 0x80u) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
		i += len;
	}
	return 1;
}

/** `s` as a JSON string; `s` is valid UTF-8, so only '"', '\' and C0 need escapes. */
static void append_json_string(struct buf *b, const char *s) {
	append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			append(b, esc, 2);
		} else if (*p < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", *p);
			append(b, esc, 6);
		} else append(b, (const char *)p, 1);
	}
	append(b, "\"", 1);
}

static void append_base64(struct buf *b, const unsigned char *s, size_t n) {
	static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	reserve(b, (n + 2) / 3 * 4);
	char *o = b->p + b->len;
	size_t i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = A[v >> 18];
		*o++ = A[v >> 12 & 63];
		*o++ = A[v >> 6 & 63];
		*o++ = A[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
		*o++ = A[v >> 18];
		*o++ = A[v >> 12 & 63];
		*o++ = i + 1 < n ? A[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	b->len = (size_t)(o - b->p);
}

// --- the reply: one JSON line per request. A small reader of what is needed, that rejects
// (never overreads) anything else; the socket is root's, but a reply that is not one must still
// end in a line, not in a crash.

static const char *ws(const char *p, const char *e) {
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
	return p;
}

static const char *skip_string(const char *p, const char *e) {
	for (p++; p < e; p++) {
		if (*p == '\\') p++;
		else if (*p == '"') return p + 1;
		else if ((unsigned char)*p < 0x20) return NULL;
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *e, int depth) {
	p = ws(p, e);
	if (p >= e || depth > 32) return NULL;
	if (*p == '"') return skip_string(p, e);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		int object = *p == '{';
		p = ws(p + 1, e);
		if (p < e && *p == close) return p + 1;
		for (;;) {
			if (object) {
				p = ws(p, e);
				if (p >= e || *p != '"' || !(p = skip_string(p, e))) return NULL;
				p = ws(p, e);
				if (p >= e || *p != ':') return NULL;
				p++;
			}
			if (!(p = skip_value(p, e, depth + 1))) return NULL;
			p = ws(p, e);
			if (p >= e) return NULL;
			if (*p == close) return p + 1;
			if (*p++ != ',') return NULL;
		}
	}
	const char *start = p;
	while (p < e && (((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.')) p++;
	return p > start ? p : NULL;
}

/** The value of `key` in the object at `p` (already checked whole by skip_value), or NULL. */
static const char *member(const char *p, const char *e, const char *key) {
	p = ws(p, e);
	if (p >= e || *p != '{') return NULL;
	p = ws(p + 1, e);
	size_t klen = strlen(key);
	while (p < e && *p == '"') {
		const char *kend = skip_string(p, e);
		if (!kend) return NULL;
		int match = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
		p = ws(kend, e);
		if (p >= e || *p != ':') return NULL;
		p = ws(p + 1, e);
		if (match) return p;
		if (!(p = skip_value(p, e, 1))) return NULL;
		p = ws(p, e);
		if (p < e && *p == ',') p = ws(p + 1, e);
	}
	return NULL;
}

static int is_literal(const char *p, const char *e, const char *word) {
	size_t n = strlen(word);
	return p && (size_t)(e - p) >= n && memcmp(p, word, n) == 0;
}

static unsigned hex4(const char *p) {
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v = v << 4 | (unsigned)(c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : 0);
	}
	return v;
}

static void put_utf8(struct buf *out, uint32_t cp) {
	char u[4];
	size_t n;
	if (cp < 0x80) u[0] = (char)cp, n = 1;
	else if (cp < 0x800) u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), n = 2;
	else if (cp < 0x10000) u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 63)), u[2] = (char)(0x80 | (cp & 63)), n = 3;
	else u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 63)), u[2] = (char)(0x80 | (cp >> 6 & 63)), u[3] = (char)(0x80 | (cp & 63)), n = 4;
	if (out->len + n < out->cap) {
		memcpy(out->p + out->len, u, n);
		out->len += n;
	}
}

/** The JSON string at `p` decoded into `out` (truncated at its size, NUL-terminated); 0 if `p` is no string. */
static int string_at(const char *p, const char *e, char *out, size_t cap) {
	const char *end = p && p < e && *p == '"' ? skip_string(p, e) : NULL;
	if (!end) return 0;
	struct buf o = { out, 0, cap };
	for (p++; p < end - 1; p++) {
		if (*p != '\\') {
			if (o.len + 1 < cap) out[o.len++] = *p;
			continue;
		}
		char c = *++p;
		if (c == 'u' && end - 1 - p > 4) {
			uint32_t cp = hex4(p + 1);
			p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && end - 1 - p > 6 && p[1] == '\\' && p[2] == 'u') {
				uint32_t lo = hex4(p + 3);
				if (lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
			}
			put_utf8(&o, cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp);
		} else if (o.len + 1 < cap) {
			out[o.len++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' : c == 'f' ? '\f' : c;
		}
	}
	out[o.len] = 0;
	return 1;
}

struct conn {
	int fd;
	struct buf in;
	/** What is left of `in` after the lines already taken. */
	size_t taken;
};

static _Noreturn void fault(const char *what, const char *fmt, ...) {
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	say("guest %s: %s: %s", g_argc > 1 ? g_argv[1] : "(none)", what, why);
	exit(0);
}

static void connect_daemon(struct conn *c, const char *what, long phase_end) {
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(g_socket) >= sizeof addr.sun_path)
		fault(what, "socket path %s is longer than the %zu bytes a unix socket address holds", g_socket, sizeof addr.sun_path - 1);
	strcpy(addr.sun_path, g_socket);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) fault(what, "socket: %s", strerror(errno));
	for (;;) {
		if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) == 0) return;
		int e = errno;
		int is_deadline;
		// A full backlog (a daemon too busy to accept): tried again, within the answer's bound.
		if ((e == EAGAIN || e == EINTR) && remaining(phase_end, &is_deadline) > 0) {
			poll(NULL, 0, 5);
			continue;
		}
		if (e == EAGAIN && is_deadline) give_up_at_deadline();
		if (e == ENOENT) fault(what, "no pvteardown daemon at %s (ENOENT): start one with `pvteardown daemon`", g_socket);
		if (e == ECONNREFUSED) fault(what, "nothing is listening on %s (ECONNREFUSED; a daemon that died left its socket): start `pvteardown daemon`", g_socket);
		if (e == EACCES || e == EPERM) fault(what, "permission denied on %s (%s): the daemon's socket is root-only", g_socket, e == EACCES ? "EACCES" : "EPERM");
		fault(what, "cannot connect to the pvteardown daemon at %s (%s)", g_socket, strerror(e));
	}
}

static void send_all(struct conn *c, const char *what, const struct buf *req, long phase_start, int timeout_ms, const char *op) {
	long phase_end = phase_start + timeout_ms;
	for (size_t off = 0; off < req->len;) {
		ssize_t n = send(c->fd, req->p + off, req->len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) fault(what, "connection to the pvteardown daemon at %s failed while sending op %s: %s", g_socket, op, strerror(errno));
		int is_deadline;
		int left = remaining(phase_end, &is_deadline);
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		if (left == 0 || (poll(&p, 1, left) == 0)) {
			if (is_deadline) give_up_at_deadline();
			fault(what, "pvteardown daemon at %s did not take op %s within %d ms", g_socket, op, timeout_ms);
		}
	}
}

/** The next reply line (NUL-terminated in place), read within `timeout_ms` from `phase_start`. */
static char *read_line(struct conn *c, const char *what, const char *op, long phase_start, int timeout_ms, const char **end) {
	long phase_end = phase_start + timeout_ms;
	for (;;) {
		char *line = c->in.p + c->taken;
		char *nl = c->in.len > c->taken ? memchr(line, '\n', c->in.len - c->taken) : NULL;
		size_t pending = nl ? (size_t)(nl - line) : c->in.len - c->taken;
		if (pending >= MAX_REPLY_BYTES) fault(what, "pvteardown daemon at %s answered op %s with a line longer than %u bytes", g_socket, op, MAX_REPLY_BYTES);
		if (nl) {
			*nl = 0;
			c->taken = (size_t)(nl + 1 - c->in.p);
			*end = nl;
			return line;
		}
		int is_deadline;
		int left = remaining(phase_end, &is_deadline);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int r = left > 0 ? poll(&p, 1, left) : 0;
		if (r < 0 && errno == EINTR) continue;
		if (r == 0) {
			if (is_deadline) give_up_at_deadline();
			fault(what, "pvteardown daemon at %s did not answer op %s within %d ms", g_socket, op, timeout_ms);
		}
		reserve(&c->in, 65536);
		ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
		if (n < 0) fault(what, "connection to the pvteardown daemon at %s failed during op %s: %s", g_socket, op, strerror(errno));
		if (n == 0) fault(what, "pvteardown daemon at %s closed the connection without answering op %s", g_socket, op);
		c->in.len += (size_t)n;
	}
}

/** The result of a reply line {"ok":true,"result":...}; a daemon's error or anything else is a fault. */
static const char *result_of(const char *line, const char *end, const char *what, const char *op) {
	const char *after = skip_value(line, end, 0);
	if (!after || ws(after, end) != end || *ws(line, end) != '{')
		fault(what, "pvteardown daemon at %s answered op %s with a line that is not a JSON object: %.80s", g_socket, op, line);
	const char *ok = member(line, end, "ok");
	if (is_literal(ok, end, "false")) {
		char error[1024];
		if (!string_at(member(line, end, "error"), end, error, sizeof error)) strcpy(error, "(no error message)");
		fault(what, "%s", error);
	}
	const char *result = member(line, end, "result");
	if (!is_literal(ok, end, "true") || !result) fault(what, "pvteardown daemon at %s answered op %s with something that is not a response: %.80s", g_socket, op, line);
	return result;
}

static long deadline_from_env(void) {
	const char *v = getenv("PVTEARDOWN_HOOK_DEADLINE_MS");
	char *rest;
	errno = 0;
	long ms = v && *v ? strtol(v, &rest, 10) : 0;
	return v && *v && !*rest && !errno && ms >= 100 && ms <= 3600000 ? ms : DEFAULT_DEADLINE_MS;
}

int main(int argc, char **argv) {
	clock_gettime(CLOCK_MONOTONIC, &g_start);
	signal(SIGPIPE, SIG_IGN);
	g_argc = argc;
	g_argv = argv;
	g_deadline_ms = deadline_from_env();
	const char *env_socket = getenv("PVTEARDOWN_SOCKET");
	g_socket = env_socket && *env_socket ? env_socket : DEFAULT_SOCKET;

	const char *op = argc > 2 ? argv[2] : NULL, *subop = argc > 3 ? argv[3] : "-";
	int acted = -1, known = 0;
	for (size_t i = 0; op && i < sizeof ACTED / sizeof ACTED[0]; i++)
		if (!strcmp(op, ACTED[i].op) && !strcmp(subop, ACTED[i].subop)) acted = (int)i;
	for (size_t i = 0; op && i < sizeof KNOWN_OPS / sizeof KNOWN_OPS[0]; i++) known |= !strcmp(op, KNOWN_OPS[i]);
	// Read (drain) the XML even when it is not needed: libvirt's write must not meet a closed pipe.
	struct buf xml = { 0 };
	char stdin_problem[128] = "";
	int wants_xml = acted < 0 || ACTED[acted].wants_xml;
	read_stdin(&xml, wants_xml, stdin_problem, sizeof stdin_problem);
	if (acted < 0 && known && argv[1] && argv[1][0]) return 0;

	const char *what = acted >= 0 ? ACTED[acted].what : "nothing done";
	for (int i = 1; i < argc; i++)
		if (!valid_utf8((const unsigned char *)argv[i], strlen(argv[i])))
		{
			say("argument %d '%.64s' is not valid UTF-8 (libvirt passes UTF-8 names and ops): nothing done (fail-open)", i, argv[i]);
			return 0;
		}

	int prepare = acted == 0;
	struct buf req = { 0 };
	// At prepare the daemon is asked first how long its admission may wait (status), in the same
	// write: the deadline then allows for that wait, and nothing more.
	if (prepare) append_str(&req, "{\"op\":\"status\"}\n");
	// "op" first: the daemon takes a longer line only for this op (socket-server.ts).
	append_str(&req, "{\"op\":\"hook\",\"argv\":[");
	for (int i = 1; i < argc && i <= 16; i++) {
		if (i > 1) append(&req, ",", 1);
		append_json_string(&req, argv[i]);
	}
	append(&req, "]", 1);
	if (wants_xml) {
		append_str(&req, ",\"xmlBase64\":\"");
		append_base64(&req, (const unsigned char *)xml.p, xml.len);
		append(&req, "\"", 1);
	}
	if (stdin_problem[0] && wants_xml) {
		append_str(&req, ",\"stdinProblem\":");
		append_json_string(&req, stdin_problem);
	}
	append(&req, "}\n", 2);
	free(xml.p);

	struct conn c = { .fd = -1 };
	long phase_start = elapsed_ms();
	int timeout_ms = prepare ? STATUS_MS : acted >= 0 ? ACTED[acted].timeout_ms : STATUS_MS;
	connect_daemon(&c, what, phase_start + timeout_ms);
	send_all(&c, what, &req, phase_start, timeout_ms, prepare ? "status" : "hook");
	free(req.p);

	const char *end;
	if (prepare) {
		char *line = read_line(&c, what, "status", phase_start, STATUS_MS, &end);
		const char *limits = member(result_of(line, end, what, "status"), end, "limits");
		const char *wait = limits ? member(limits, end, "admissionTimeoutSeconds") : NULL;
		char *rest;
		double seconds = wait ? strtod(wait, &rest) : -1;
		if (!wait || rest == wait || !(seconds >= 0 && seconds <= 86400))
			fault(what, "pvteardown daemon at %s answered op status without a usable limits.admissionTimeoutSeconds", g_socket);
		timeout_ms = (int)(seconds * 1000) + ADMIT_MARGIN_MS;
		g_deadline_ms += timeout_ms;
		phase_start = elapsed_ms();
	}
	char *line = read_line(&c, what, "hook", phase_start, timeout_ms, &end);
	const char *result = result_of(line, end, what, "hook");
	char text[MAX_LINE_BYTES];
	if (string_at(member(result, end, "line"), end, text, sizeof text)) say("%s", text);
	return prepare && is_literal(member(result, end, "refused"), end, "true") ? REFUSED_EXIT : 0;
}

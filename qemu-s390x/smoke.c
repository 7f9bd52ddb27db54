/* Proves the cross toolchain and the guest agree: a binary built by s390x-linux-gnu-gcc runs,
 * sees a big-endian s390x kernel, and gets a pidfd through the raw syscall number. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void)
{
	struct utsname u;
	const uint32_t one = 1;
	unsigned char first;
	long fd;

	if (uname(&u) != 0) {
		perror("uname");
		return 1;
	}
	memcpy(&first, &one, 1);
	/* 434 is pidfd_open on every arch; asking for it by number checks the guest kernel. */
	fd = syscall(434, getpid(), 0);
	if (fd < 0) {
		perror("pidfd_open");
		return 1;
	}
	printf("machine=%s endian=%s pidfd=%s\n", u.machine, first ? "little" : "big", fd >= 0 ? "ok" : "no");
	close((int)fd);
	return 0;
}

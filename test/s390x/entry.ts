// The s390x stage's only node process (a node start costs ~6 s under TCG): importing the test
// modules registers their tests with node:test in this process. Static imports, so that a
// renamed module breaks the build instead of silently shrinking the s390x run.
import './smoke.test.js';
// Unit level: codecs and parsers must not assume little-endian; s390x is big-endian.
import '../unit/libvirt-xdr.test.js';
import '../unit/libvirt-packet.test.js';
import '../unit/libvirt-protocol.test.js';
import '../unit/protocol.test.js';
import '../unit/cgroup-names.test.js';
import '../unit/cgroup-layout.test.js';
import '../unit/cgroup-backend.test.js';
import '../unit/daemon-records.test.js';
import '../unit/daemon-pacing.test.js';
import '../unit/hook-args.test.js';
import '../unit/hook-xml.test.js';
import '../unit/sys-open.test.js';
import '../unit/sys-proc.test.js';
// Native: raw clone with s390x's argument order, pidfd, process_mrelease, the shim on fake guests.
import '../system/helper-cli.test.js';
import '../system/shim-semantics.test.js';
import '../system/shim-teardown.test.js';
import '../system/shim-confinement.test.js';
import '../system/shim-kvm.test.js';
// Core on pure cgroup v2.
import '../system/cgroup-backend.test.js';
import '../system/socket-server.test.js';
import '../system/socket-client.test.js';
// The daemon on pure v2: queue and freeze, cpu.max pacing, recovery, admission (guests scaled
// down by PVTEARDOWN_TEST_MIB, timeouts up by PVTEARDOWN_TEST_SLOWDOWN).
import '../system/daemon.test.js';
import '../system/daemon-lifecycle.test.js';

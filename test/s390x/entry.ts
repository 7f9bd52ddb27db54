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
import '../unit/hook-args.test.js';
import '../unit/hook-xml.test.js';
import '../unit/sys-open.test.js';
import '../unit/sys-proc.test.js';
// Native: raw clone with s390x's argument order, pidfd, the shim on fake guests.
import '../system/shim-semantics.test.js';
import '../system/shim-teardown.test.js';
// Core on pure cgroup v2.
import '../system/cgroup-backend.test.js';
import '../system/socket-server.test.js';
import '../system/socket-client.test.js';
// Not yet: helper-cli (its frozen-mrelease case assumes the v1 freezer, which holds a killed
// task; a v2-frozen task dies at once, so mrelease races its exit), daemon (its test daemon must
// answer within 15 s while a node start alone takes ~6 s under TCG; its guests are 1-2 GiB).

// The s390x stage's only node process (a node start costs ~6 s under TCG): importing the test
// modules registers their tests with node:test in this process. Static imports, so that a
// renamed module breaks the build instead of silently shrinking the s390x run.
import './smoke.test.js';
// Unit level: codecs and parsers must not assume little-endian; s390x is big-endian.
import '../unit/libvirt-xdr.test.js';
import '../unit/libvirt-packet.test.js';
import '../unit/libvirt-protocol.test.js';
import '../unit/cgroup-names.test.js';
import '../unit/cgroup-layout.test.js';
import '../unit/cgroup-backend.test.js';

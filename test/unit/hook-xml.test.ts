// The hook's reading of domain XML: libvirt's own output (x86 KVM, s390x Secure Execution), every
// memory unit libvirt accepts, and input that is broken in the ways a pipe or a person breaks it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DomainXmlError, parseDomainXml } from '../../src/hook/domain-xml.js';
import { scaledBytes, unitBytes } from '../../src/hook/memory-units.js';

/** As `virsh dumpxml` prints a running diskless test guest here (libvirt 9.0). */
const X86 = `<domain type='kvm' id='3'>
  <name>pvtd-test-1g</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <memory unit='KiB'>1048576</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <memoryBacking>
    <allocation mode='immediate'/>
  </memoryBacking>
  <vcpu placement='static'>1</vcpu>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/local/lib/pvteardown/bin/qemu-system-x86_64</emulator>
    <controller type='usb' index='0' model='none'>
      <alias name='usb'/>
    </controller>
    <memory model='dimm'>
      <target>
        <size unit='KiB'>524288</size>
        <node>0</node>
      </target>
    </memory>
    <memballoon model='none'/>
  </devices>
  <seclabel type='dynamic' model='dac' relabel='yes'>
    <label>+64055:+994</label>
    <imagelabel>+64055:+994</imagelabel>
  </seclabel>
</domain>
`;

/** An IBM Secure Execution guest as libvirt shows it (launchSecurity, virtio iommu_platform). */
const S390_PV = `<?xml version="1.0" encoding="UTF-8"?>
<!-- WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh edit se-guest
-->
<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">
  <name>se-guest &amp; co</name>
  <uuid>0C1D9B7E6F5A4B3C8D2E1F0A9B8C7D6E</uuid>
  <memory unit="GiB">64</memory>
  <vcpu>4</vcpu>
  <os>
    <type arch="s390x" machine="s390-ccw-virtio-rhel9.2.0">hvm</type>
  </os>
  <launchSecurity type="s390-pv"/>
  <devices>
    <emulator>/usr/bin/qemu-system-s390x</emulator>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2" iommu="on"/>
      <source file="/var/lib/libvirt/images/se.qcow2"/>
      <target dev="vda" bus="virtio"/>
    </disk>
  </devices>
  <qemu:commandline>
    <qemu:arg value="-run-with"/>
    <qemu:arg value="async-teardown=on"/>
  </qemu:commandline>
</domain>`;

describe('parseDomainXml', () => {
  it('reads name, UUID, memory and emulator from x86 KVM XML; a memory device is not the domain memory', () => {
    assert.deepEqual(parseDomainXml(X86), {
      name: 'pvtd-test-1g',
      uuid: '4dea22b3-1d52-d8f3-2516-782e98ab3fa0',
      memoryBytes: 2 ** 30,
      launchSecurity: null,
      emulator: '/usr/local/lib/pvteardown/bin/qemu-system-x86_64',
      problems: [],
    });
  });

  it('reads s390-pv launchSecurity, decodes entities, normalizes a dashless UUID, skips the declaration and comment', () => {
    const d = parseDomainXml(S390_PV);
    assert.equal(d.launchSecurity, 's390-pv');
    assert.equal(d.name, 'se-guest & co');
    assert.equal(d.uuid, '0c1d9b7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e');
    assert.equal(d.memoryBytes, 64 * 2 ** 30);
    assert.equal(d.emulator, '/usr/bin/qemu-system-s390x');
  });

  it('memory without a unit is KiB; other units scale as libvirt scales them', () => {
    const mem = (attr: string, v = '3') => parseDomainXml(`<domain><memory${attr}>${v}</memory></domain>`).memoryBytes;
    assert.equal(mem(''), 3 * 1024);
    assert.equal(mem(" unit='b'"), 3);
    assert.equal(mem(" unit='bytes'"), 3);
    assert.equal(mem(" unit='KB'"), 3000);
    assert.equal(mem(" unit='k'"), 3072);
    assert.equal(mem(" unit='MiB'"), 3 * 2 ** 20);
    assert.equal(mem(" unit='M'"), 3 * 2 ** 20);
    assert.equal(mem(" unit='MB'"), 3e6);
    assert.equal(mem(" unit='gib'"), 3 * 2 ** 30);
    assert.equal(mem(" unit='GB'"), 3e9);
    assert.equal(mem(" unit='T'"), 3 * 2 ** 40);
    assert.equal(mem(" unit='TB'"), 3e12);
    assert.equal(mem(" unit='PiB'"), 3 * 2 ** 50);
    assert.equal(mem(" unit = \"KiB\" "), 3072);
    assert.equal(mem('', '\n  1024\n'), 2 ** 20);
  });

  it('a bad memory value or unit leaves memoryBytes null and says why; the rest is still read', () => {
    const bad = parseDomainXml(`<domain><name>g</name><memory unit='XB'>1</memory></domain>`);
    assert.equal(bad.memoryBytes, null);
    assert.equal(bad.name, 'g');
    assert.match(bad.problems[0]!, /unit 'XB' is not one libvirt accepts/);
    assert.match(parseDomainXml(`<domain><memory>1.5</memory></domain>`).problems[0]!, /'1.5' is not a whole number/);
    assert.match(parseDomainXml(`<domain><memory unit='EiB'>9999</memory></domain>`).problems[0]!, /more bytes than/);
    assert.match(parseDomainXml(`<domain><uuid>not-a-uuid</uuid></domain>`).problems[0]!, /not a UUID/);
    assert.deepEqual(parseDomainXml('<domain/>'), { name: null, uuid: null, memoryBytes: null, launchSecurity: null, emulator: null, problems: [] });
  });

  it('uses the first of duplicated elements and ignores nested lookalikes', () => {
    const d = parseDomainXml('<domain><name>a</name><name>b</name><metadata><name>c</name><memory>1</memory></metadata><memory>2</memory></domain>');
    assert.equal(d.name, 'a');
    assert.equal(d.memoryBytes, 2048);
  });

  it('reads a value given as CDATA and with a comment inside', () => {
    assert.equal(parseDomainXml('<domain><name><![CDATA[a<b]]></name></domain>').name, 'a<b');
    assert.equal(parseDomainXml('<domain><memory>1<!-- x -->0</memory></domain>').memoryBytes, 10 * 1024);
    assert.equal(parseDomainXml(`<domain><devices><emulator a='>'>/x</emulator></devices></domain>`).emulator, '/x');
  });

  for (const [what, xml, message] of [
    ['empty input', '', /no <domain> element/],
    ['whitespace only', ' \n', /no <domain> element/],
    ['truncated in a tag', X86.slice(0, 200), /never closed|unterminated/],
    ['truncated in text', '<domain><name>g', /<name> is never closed/],
    ['a mismatched close', '<domain><name>g</uuid></domain>', /<\/uuid> closes <name>/],
    ['a stray close', '<domain></domain></domain>', /closes nothing/],
    ['another root', '<network><name>n</name></network>', /root element is <network>/],
    ['two roots', '<domain/><domain/>', /second root/],
    ['text outside', 'hello <domain/>', /text outside/],
    ['an unterminated comment', '<domain><!-- x', /unterminated comment/],
    ['binary garbage', '\u0000\u0001<\u0002', /text outside|unterminated|never closed|without a name/],
    ['JSON', '{"name":"g"}', /text outside/],
  ] as const) {
    it(`throws DomainXmlError naming the fault for ${what}`, () => {
      assert.throws(() => parseDomainXml(xml), (err: unknown) => err instanceof DomainXmlError && message.test(err.message));
    });
  }
});

describe('libvirt memory units', () => {
  it('are case-insensitive and refuse what libvirt refuses', () => {
    assert.equal(unitBytes(undefined), 1024);
    assert.equal(unitBytes('KIB'), 1024);
    assert.equal(unitBytes('eib'), 2 ** 60);
    assert.equal(unitBytes('Byte'), 1);
    for (const u of ['x', 'KiBB', 'Ki', 'kb2', 'bits']) assert.equal(unitBytes(u), null, u);
    assert.ok(scaledBytes('-1', 'KiB') instanceof Error);
    assert.ok(scaledBytes('', 'KiB') instanceof Error);
    assert.equal(scaledBytes(' 7 ', 'b'), 7);
  });
});

// SR-IOV parsing and planning on a fake tree shaped like the guest's igb PF (0000:00:03.0, on igb, 7 of 8 VFs
// allowed by the driver, VFs at offset 0x80 stride 2, two of them present), the capability decoder on config
// bytes, VF addresses from offset and stride, VF-token text and bytes, and a dry run that changes nothing. The
// kernel's behaviour is checked in the guest by tests/integration/sriov.test.ts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { UnsupportedError, VfioError, VfsInUseError, VfTokenError } from "../../lib/errors.ts";
import {
  parseSriovCapability,
  physicalFunction,
  setVfCount,
  sriovStatus,
  vfAddress,
  vfUsers,
  virtualFunctions,
} from "../../lib/sysfs/sriov.ts";
import { checkVfToken, deviceNameWithToken, vfTokenBytes } from "../../lib/vf_token.ts";
import { FakeTree } from "./fake_tree.ts";

const PF = "0000:00:03.0";
const VFS = ["0000:00:13.0", "0000:00:13.2"];
const CAP = 0x160;

/** 4096 bytes of config space: an express capability list with SR-IOV at 0x160. */
function config(): Uint8Array {
  const c = new Uint8Array(4096);
  const v = new DataView(c.buffer);
  v.setUint16(0, 0x8086, true);
  v.setUint16(2, 0x10c9, true);
  v.setUint32(0x100, 0x0001 | (1 << 16) | (CAP << 20), true); // AER at 0x100 -> SR-IOV
  v.setUint32(CAP, 0x0010 | (1 << 16), true); // SR-IOV, last
  v.setUint16(CAP + 0x08, 0x0019, true); // VF enable, MSE, ARI
  v.setUint16(CAP + 0x0c, 8, true);
  v.setUint16(CAP + 0x0e, 8, true);
  v.setUint16(CAP + 0x10, 2, true);
  v.setUint16(CAP + 0x14, 0x80, true);
  v.setUint16(CAP + 0x16, 2, true);
  v.setUint16(CAP + 0x1a, 0x10ca, true);
  v.setUint32(CAP + 0x1c, 0x553, true);
  v.setUint32(CAP + 0x20, 1, true);
  return c;
}

const tree = new FakeTree("vfio-ts-sriov-");
const dev = (a: string): string => `/sys/bus/pci/devices/${a}`;
tree.file(`${dev(PF)}/vendor`, "0x8086\n");
tree.file(`${dev(PF)}/device`, "0x10c9\n");
tree.file(`${dev(PF)}/sriov_totalvfs`, "7\n");
tree.file(`${dev(PF)}/sriov_numvfs`, "2\n");
tree.file(`${dev(PF)}/sriov_drivers_autoprobe`, "1\n");
tree.file(`${dev(PF)}/sriov_vf_device`, "10ca\n");
tree.file(`${dev(PF)}/sriov_offset`, "128\n");
tree.file(`${dev(PF)}/sriov_stride`, "2\n");
tree.file(`${dev(PF)}/config`, "");
tree.link(`${dev(PF)}/driver`, "../../../bus/pci/drivers/igb");
for (const [i, vf] of VFS.entries()) {
  tree.file(`${dev(vf)}/vendor`, "0x8086\n");
  tree.file(`${dev(vf)}/device`, "0x10ca\n");
  tree.link(`${dev(PF)}/virtfn${i}`, `../${vf}`);
  tree.link(`${dev(vf)}/physfn`, `../${PF}`);
  tree.link(`${dev(vf)}/iommu_group`, `../../../kernel/iommu_groups/${5 + i}`);
}
tree.link(`${dev(VFS[0])}/driver`, "../../../bus/pci/drivers/vfio-pci");
tree.dir("/sys/bus/pci/drivers/vfio-pci");
tree.dir("/proc");
const opts = { root: tree.root };
after(() => tree.remove());

describe("SR-IOV on a fake tree", () => {
  it("decodes the capability from config bytes; none in 256 bytes", () => {
    const cap = parseSriovCapability(config());
    assert.deepEqual(cap, {
      offset: CAP,
      initialVfs: 8,
      totalVfs: 8,
      numVfs: 2,
      vfEnable: true,
      firstVfOffset: 0x80,
      vfStride: 2,
      vfDeviceId: 0x10ca,
      supportedPageSizes: 0x553,
      systemPageSize: 1,
    });
    assert.equal(parseSriovCapability(config().subarray(0, 256)), null);
    assert.equal(parseSriovCapability(new Uint8Array(4096)), null);
  });

  it("VF addresses follow offset and stride across device and bus numbers", () => {
    assert.equal(vfAddress(PF, 0x80, 2, 0), "0000:00:13.0");
    assert.equal(vfAddress(PF, 0x80, 2, 5), "0000:00:14.2");
    assert.equal(vfAddress("0000:01:00.0", 1, 1, 255), "0000:02:00.0");
    assert.equal(vfAddress("0000:ff:1f.7", 1, 1, 0), null);
  });

  it("status, PF <-> VF mapping and the users of VFs", () => {
    const s = sriovStatus(PF, opts);
    assert.equal(s.driver, "igb");
    assert.equal(s.totalVfs, 7);
    assert.equal(s.numVfs, 2);
    assert.equal(s.driversAutoprobe, true);
    assert.equal(s.vfDeviceId, 0x10ca);
    assert.equal(s.firstVfOffset, 128);
    assert.equal(s.capability, null, "an empty config file: no capability");
    assert.deepEqual(virtualFunctions(PF, opts).map((v) => [v.address, v.driver, v.iommuGroup]), [
      [VFS[0], "vfio-pci", 5],
      [VFS[1], null, 6],
    ]);
    assert.equal(physicalFunction(VFS[1], opts), PF);
    assert.equal(physicalFunction(PF, opts), null);
    assert.throws(() => sriovStatus(VFS[0], opts), (e) => e instanceof UnsupportedError && e.message.includes(PF));
    assert.deepEqual(vfUsers(PF, opts), []);
  });

  it("a dry run plans through 0, autoprobe off around the creation, and changes nothing", () => {
    const r = setVfCount(PF, 3, { ...opts, bind: true, dryRun: true });
    const writes = r.steps.map((s) => (s.kind === "write" ? `${s.path.split("/").pop()}=${s.value}` : s.module));
    assert.deepEqual(writes, [
      "sriov_numvfs=0",
      "sriov_drivers_autoprobe=0",
      "sriov_numvfs=3",
      "sriov_drivers_autoprobe=1",
    ]);
    assert.deepEqual(r.vfs.map((v) => v.address), ["0000:00:13.0", "0000:00:13.2", "0000:00:13.4"]);
    assert.equal(readFileSync(tree.path(`${dev(PF)}/sriov_numvfs`), "utf8"), "2\n");
    assert.throws(() => setVfCount(PF, 8, { ...opts, dryRun: true }), UnsupportedError);
    assert.throws(() => setVfCount(PF, -1, { ...opts, dryRun: true }), UnsupportedError);
    assert.deepEqual(setVfCount(PF, 2, { ...opts, dryRun: true }).steps, []);
  });

  it("VF tokens: UUID text, the kernel's byte order, the name with the token", () => {
    assert.equal(checkVfToken(" 2AB1C1A4-0C2E-4B3F-9D0E-5E5A0F6A1B2C "), "2ab1c1a4-0c2e-4b3f-9d0e-5e5a0f6a1b2c");
    assert.throws(() => checkVfToken("2ab1c1a4"), VfioError);
    const bytes = vfTokenBytes("00112233-4455-6677-8899-aabbccddeeff");
    assert.equal([...bytes].map((b) => b.toString(16).padStart(2, "0")).join(""), "00112233445566778899aabbccddeeff");
    assert.equal(deviceNameWithToken(VFS[0]), VFS[0]);
    assert.equal(
      deviceNameWithToken(VFS[0], "00112233-4455-6677-8899-AABBCCDDEEFF"),
      `${VFS[0]} vf_token=00112233-4455-6677-8899-aabbccddeeff`,
    );
  });

  it("errors name the PF, the holder and what to pass", () => {
    const e = new VfsInUseError(PF, [{
      address: VFS[0],
      description: "pid 7 (deno) holds /dev/vfio/5",
      pid: 7,
      vfio: true,
    }]);
    assert.match(e.message, /0000:00:13\.0: pid 7 \(deno\) holds \/dev\/vfio\/5/);
    assert.match(e.remedy ?? "", /pid 7/);
    const t = new VfTokenError(VFS[0], PF, "missing");
    assert.match(t.message, /VF of 0000:00:03\.0/);
    assert.match(t.remedy ?? "", /vfToken/);
    assert.match(new VfTokenError(PF, null, "missing").message, /PF whose VFs are open/);
  });
});

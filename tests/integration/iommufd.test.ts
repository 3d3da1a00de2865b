// The iommufd paths in the guest: the compat form (legacy group, /dev/iommu as container), the forced legacy
// path on an iommufd kernel, IOVA outside the IOAS's ranges, a double open across paths, and the errors when the
// kernel offers no cdev.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { O_CLOEXEC, O_RDWR } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import type { Device } from "../../lib/device.ts";
import { SystemError, UnsupportedError } from "../../lib/errors.ts";
import { attachIoas, bindIommufd, Iommufd } from "../../lib/iommu/iommufd.ts";
import { openThroughCdev } from "../../lib/open_paths.ts";
import { regionInfo } from "../../lib/region.ts";
import { pciDevice } from "../../lib/sysfs/pci.ts";

import { guest, openInGuest, releaseDevices, skipUnless } from "./guest.ts";

const { mode } = guest;
const edu = guest.edu ?? "";
const nvme = guest.nvme ?? "";
const openDevice = openInGuest;
afterEach(releaseDevices); // a failed test must not leave a device open for the next

/** A 2 KiB edu DMA RAM -> device -> RAM through the device's own DMA buffer; true when the data came back. */
async function eduRoundTrip(dev: Device): Promise<boolean> {
  dev.config.enableMemory();
  dev.config.enableBusMaster();
  const bar0 = dev.bar(0);
  const buf = dev.allocDma(8192, { hugepages: "never" });
  for (let i = 0; i < 2048; i++) buf.u8[i] = (i * 13 + 5) & 0xff;
  const dma = async (src: bigint, dst: bigint, toRam: boolean): Promise<void> => {
    bar0.write64(0x80, src);
    bar0.write64(0x88, dst);
    bar0.write64(0x90, 2048n);
    bar0.write64(0x98, toRam ? 3n : 1n);
    for (let i = 0; i < 2000 && (bar0.read64(0x98) & 1n); i++) await new Promise((r) => setTimeout(r, 1));
  };
  await dma(buf.busAddress(0), 0x40000n, false);
  await dma(0x40000n, buf.busAddress(4096), true);
  return buf.u8.subarray(0, 2048).every((v, i) => buf.u8[4096 + i] === v);
}

describe("iommufd mode", {
  skip: skipUnless(mode !== "iommufd" && `needs the iommufd mode, not ${mode}`, "iommufd mode"),
}, () => {
  it("auto picks the cdev path", () => {
    using dev = openDevice(edu);
    assert.equal(dev.iommu, "iommufd");
  });

  it("the compat form: the legacy group with /dev/iommu as its container does DMA", async () => {
    using dev = openDevice(edu, { iommu: "iommufd-compat" });
    assert.equal(dev.iommu, "iommufd");
    assert.equal(dev.bar(0).read32(0), 0x010000ed);
    assert.equal(await eduRoundTrip(dev), true);
  });

  it("a forced legacy type1 path works on an iommufd kernel", async () => {
    using dev = openDevice(edu, { iommu: "type1" });
    assert.equal(dev.iommu, "type1");
    assert.equal(await eduRoundTrip(dev), true);
  });

  it("a device opened through its group cannot also be bound through its cdev", () => {
    using dev = openDevice(edu, { iommu: "type1" });
    const cdev = pciDevice(edu).vfioDevicePath!;
    assert.throws(() => openThroughCdev(edu, cdev), /already open/);
    assert.equal(dev.bar(0).read32(0), 0x010000ed);
  });

  it("a device cdev used before it is bound to an iommufd: the error says to bind it", () => {
    const cdev = pciDevice(nvme).vfioDevicePath!;
    const fd = libc.open(cdev, O_RDWR | O_CLOEXEC);
    try {
      const raw = { fd, name: nvme }; // a DeviceFd that skipped VFIO_DEVICE_BIND_IOMMUFD
      assert.throws(() => regionInfo(raw, 0), (e: unknown) => {
        assert.ok(e instanceof SystemError, String(e));
        assert.equal(e.code, "EINVAL");
        assert.match(e.message, /bound to an iommufd/);
        return true;
      });
    } finally {
      libc.close(fd);
    }
  });

  it("an IOVA outside the IOAS's ranges is refused with the ranges in the message", () => {
    using iommufd = Iommufd.open();
    const ioas = iommufd.allocIoas();
    const cdev = pciDevice(nvme).vfioDevicePath!;
    const fd = libc.open(cdev, O_RDWR | O_CLOEXEC);
    try {
      const { devId } = bindIommufd(fd, iommufd, nvme);
      assert.equal(iommufd.hwInfo(devId).typeName, "intel-vtd");
      attachIoas(fd, ioas, nvme);
      const ranges = ioas.iovaRanges;
      assert.ok(ranges.length >= 2, "the interrupt window splits the IOVA space");
      const hole = ranges[0].end + 1n; // the first address after the first range
      const mem = libc.mmap(4096, 3, 0x22, -1, 0);
      try {
        assert.throws(() => ioas.mapDma(mem, hole, 4096), /outside the IOAS's usable IOVA ranges/);
        ioas.mapDma(mem, 0x100000n, 4096); // inside: accepted
        ioas.unmapDma(0x100000n, 4096);
      } finally {
        libc.munmap(mem, 4096);
      }
    } finally {
      libc.close(fd);
    }
  });
});

describe("no cdev", { skip: skipUnless(mode === "iommufd" && "the iommufd mode has cdevs", "no cdev") }, () => {
  it("forcing iommufd where the kernel gives no cdev says why", () => {
    assert.throws(
      () => openDevice(edu, { iommu: "iommufd", noiommu: mode === "noiommu" }),
      (e: unknown) => e instanceof UnsupportedError && /no VFIO device cdev|no iommufd/.test(e.message),
    );
  });

  it("auto never lands on iommufd here", () => {
    using dev = openDevice(edu, { noiommu: mode === "noiommu" });
    assert.equal(dev.iommu, mode === "noiommu" ? "noiommu" : "type1");
  });
});
